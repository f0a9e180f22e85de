"""An in-memory Slurm for `pool apply`: scontrol and sacctmgr commands parsed and executed on dicts,
as Slurm would (tests/unit/test_pools_*.py, test_pools_apply's properties)."""

from __future__ import annotations

import shlex
from pathlib import Path

from gpupool.errors import EnvError
from gpupool.pools.apply import ApplyOptions, ApplyReport, apply_pools
from gpupool.pools.nodes import expand_hostlist, fold_hostlist
from gpupool.pools.schema import parse_pools_text
from gpupool.slurm.invoke import SlurmCommandError


class FakeSlurm:
    """Just enough of scontrol and sacctmgr: state in dicts, commands parsed like Slurm would."""

    def __init__(self, tmp: Path, nodes: int = 8, gpus: int = 4) -> None:
        self.conf_path = tmp / "slurm.conf"
        self.conf_path.write_text("ClusterName=test\ninclude gpupool-partitions.conf\n")
        self.config = {"ClusterName": "test", "PreemptType": "preempt/partition_prio", "PreemptMode": "REQUEUE",
                       "PriorityType": "priority/multifactor", "PriorityWeightFairShare": "10000",
                       "AccountingStorageEnforce": "associations,limits,qos",
                       "AccountingStorageTRES": "cpu,mem,gres/gpu", "JobRequeue": "1",
                       "SLURM_CONF": str(self.conf_path)}
        self.nodes = {f"gpu{i:03d}": gpus for i in range(1, nodes + 1)}
        self.partitions: dict[str, dict[str, str]] = {
            "batch": {"Nodes": fold_hostlist(set(self.nodes)), "AllowAccounts": "ALL", "AllowQos": "ALL",
                      "PriorityTier": "1", "MaxTime": "UNLIMITED", "Default": "YES", "State": "UP",
                      "PreemptMode": "OFF"}}
        self.qos: dict[str, dict[str, str]] = {"normal": self._qos_row("normal", "Normal QOS default")}
        self.accounts: dict[str, dict[str, str]] = {"root": {"Descr": "default root account", "Org": "root"},
                                                     "physics": {"Descr": "hand made", "Org": "physics"}}
        self.assocs: dict[tuple[str, str], dict[str, str]] = {
            ("root", ""): {"ParentName": "", "Fairshare": "1", "QOS": "normal", "DefaultQOS": ""},
            ("physics", ""): {"ParentName": "root", "Fairshare": "5", "QOS": "normal", "DefaultQOS": ""},
        }
        self.users: set[str] = {"root"}
        self.default_account: dict[str, str] = {"root": "root"}
        self.dbd_up = True
        self.fail_on: str | None = None  # substring of a mutating command that Slurm rejects
        self.mutations: list[str] = []

    @staticmethod
    def _qos_row(name: str, descr: str) -> dict[str, str]:
        return {"Name": name, "Priority": "0", "GrpTRES": "", "MaxTRESPU": "", "MaxWall": "", "Preempt": "",
                "PreemptMode": "cluster", "Description": descr, "GraceTime": "00:00:00", "PreemptExemptTime": ""}

    # -- the CommandRunner interface --
    def __call__(self, argv: list[str]) -> str:
        text = shlex.join(argv)
        if argv[0] == "sacctmgr" and not self.dbd_up:
            raise EnvError("sacctmgr: Slurm unreachable: sacctmgr: error: Problem talking to the database")
        if self.fail_on and self.fail_on in text:
            raise SlurmCommandError(f"{argv[0]}: error: rejected {text}", argv=argv)
        if argv[:3] == ["scontrol", "show", "config"]:
            return "".join(f"{k} = {v}\n" for k, v in self.config.items())
        if argv[:4] == ["scontrol", "-o", "-d", "show"] and argv[4] == "node":
            return "".join(f"NodeName={n} Arch=x86_64 Gres=gpu:h100:{g} GresUsed=gpu:h100:0(IDX:N/A) "
                           f"State=IDLE CfgTRES=cpu=16,gres/gpu={g} AllocTRES=\n" for n, g in self.nodes.items())
        if argv[:4] == ["scontrol", "-o", "show", "partition"]:
            return "".join("PartitionName=" + n + " " + " ".join(f"{k}={v}" for k, v in p.items()) + "\n"
                           for n, p in self.partitions.items())
        if argv[0] == "scontrol":
            self.mutations.append(text)
            return self._scontrol(argv[1:])
        if argv[0] == "sacctmgr" and "show" in argv:
            return self._show(argv)
        if argv[0] == "sacctmgr":
            self.mutations.append(text)
            return self._sacctmgr(argv[2:])
        raise AssertionError(f"unexpected command {text}")

    def _scontrol(self, args: list[str]) -> str:
        verb, rest = args[0], args[1:]
        fields = dict(a.split("=", 1) for a in rest)
        name = fields.pop("PartitionName")
        if verb == "create":
            assert name not in self.partitions, f"partition {name} exists"
            for host in expand_hostlist(fields["Nodes"]):
                assert host in self.nodes
            self.partitions[name] = {"AllowAccounts": "ALL", "AllowQos": "ALL", "PreemptMode": "OFF", **fields}
            if fields.get("MaxTime") == "UNLIMITED":
                self.partitions[name]["MaxTime"] = "UNLIMITED"
        elif verb == "update":
            self.partitions[name].update(fields)
        elif verb == "delete":
            del self.partitions[name]
        return ""

    def _show(self, argv: list[str]) -> str:
        what = argv[argv.index("show") + 1]
        if what == "qos":
            cols = ("Name", "Priority", "GrpTRES", "MaxTRESPU", "MaxWall", "Preempt", "PreemptMode", "Description",
                    "GraceTime", "PreemptExemptTime")
            return "".join("|".join(q[c] for c in cols) + "\n" for q in self.qos.values())
        if what == "account":
            return "".join(f"{n}|{a['Descr']}|{a['Org']}\n" for n, a in self.accounts.items())
        if what == "assoc":
            return "".join(f"{acct}|{user}|{a['ParentName']}|{a['Fairshare']}|{a['QOS']}|{a['DefaultQOS']}\n"
                           for (acct, user), a in self.assocs.items())
        if what == "user":
            return "".join(f"{u}|{self.default_account.get(u, '')}\n" for u in sorted(self.users))
        raise AssertionError(what)

    def _sacctmgr(self, args: list[str]) -> str:
        verb, what = args[0], args[1]
        if verb == "add":
            name = args[2]
            fields = dict(a.split("=", 1) for a in args[3:])
            if what == "qos":
                row = self._qos_row(name, fields.pop("Description", ""))
                row["Priority"] = fields.pop("Priority", "0")
                row["PreemptMode"] = fields.pop("PreemptMode", "cluster")
                row["GrpTRES"] = fields.pop("GrpTRES", "")
                row["MaxTRESPU"] = fields.pop("MaxTRESPerUser", "")
                row["MaxWall"] = fields.pop("MaxWall", "")
                row["PreemptExemptTime"] = _slurm_duration(fields.pop("PreemptExemptTime", ""))
                row["GraceTime"] = _slurm_duration(fields.pop("GraceTime", "0"))
                assert not fields, fields
                self.qos[name] = row
            elif what == "account":
                assert fields["Parent"] in self.accounts
                if name not in self.accounts:
                    self.accounts[name] = {"Descr": fields.get("Description", ""), "Org": fields.get("Organization", "")}
                self.assocs[(name, "")] = {"ParentName": fields["Parent"], "Fairshare": fields["Fairshare"],
                                           "QOS": self.assocs[(fields["Parent"], "")]["QOS"], "DefaultQOS": ""}
            elif what == "user":
                account = fields["Account"]
                assert (account, "") in self.assocs
                self.users.add(name)
                if "DefaultAccount" in fields:
                    self.default_account[name] = fields["DefaultAccount"]
                self.assocs[(account, name)] = {"ParentName": "", "Fairshare": "1",
                                                "QOS": self.assocs[(account, "")]["QOS"], "DefaultQOS": ""}
            return ""
        where = dict(a.split("=", 1) for a in args[args.index("where") + 1:args.index("set")] if "=" in a) \
            if "set" in args else dict(a.split("=", 1) for a in args[3:] if "=" in a)
        settings = [a.split("=", 1) for a in args[args.index("set") + 1:]] if "set" in args else []
        if verb == "modify" and what == "qos":
            row = self.qos[where["name"]]
            for key, value in settings:
                if key == "Preempt":
                    for target in filter(None, value.split(",")):
                        assert target in self.qos, f"Preempt names unknown QOS {target}"
                    row["Preempt"] = value
                elif key in {"GrpTRES", "MaxTRESPerUser"}:
                    row["GrpTRES" if key == "GrpTRES" else "MaxTRESPU"] = "" if value.endswith("=-1") else value
                elif key == "MaxWall":
                    row["MaxWall"] = "" if value == "-1" else value
                elif key in {"PreemptExemptTime", "GraceTime"}:
                    row[key] = _slurm_duration(value)
                else:
                    row[key] = value
        elif verb == "modify" and what == "account":
            assoc = self.assocs[(where["name"], "")]
            for key, value in settings:
                if key == "QOS+":
                    for q in value.split(","):
                        assert q in self.qos
                    assoc["QOS"] = ",".join(sorted(set(assoc["QOS"].split(",")) | set(value.split(","))))
                elif key == "QOS-":
                    assoc["QOS"] = ",".join(sorted(set(assoc["QOS"].split(",")) - set(value.split(","))))
                elif key == "Fairshare":
                    assoc["Fairshare"] = value
                elif key == "Parent":
                    assoc["ParentName"] = value
                elif key == "DefaultQOS":
                    assert value == "-1" or value in assoc["QOS"].split(","), "DefaultQOS must be in the QOS list"
                    for (account, _user), row in self.assocs.items():
                        if account == where["name"]:  # children inherit the account's default
                            row["DefaultQOS"] = "" if value == "-1" else value
        elif verb == "delete" and what == "qos":
            if any(a["DefaultQOS"] == where["name"] for a in self.assocs.values()):
                raise SlurmCommandError("sacctmgr: Associations listed below have these as their Default QOS.")
            del self.qos[where["name"]]
            for assoc in self.assocs.values():
                assoc["QOS"] = ",".join(q for q in assoc["QOS"].split(",") if q != where["name"])
        elif verb == "delete" and what == "account":
            for key in [k for k in self.assocs if k[0] == where["name"]]:
                del self.assocs[key]
        elif verb == "delete" and what == "user":
            del self.assocs[(where["account"], where["name"])]
            if self.default_account.get(where["name"]) == where["account"]:
                self.default_account[where["name"]] = ""  # what Slurm 22.05 does
        elif verb == "modify" and what == "user":
            (key, value), = settings
            assert key == "DefaultAccount" and (value, where["name"]) in self.assocs
            self.default_account[where["name"]] = value
        else:
            raise AssertionError(f"unexpected sacctmgr {args}")
        return ""


def _slurm_duration(value: str) -> str:
    """How sacctmgr prints a duration it was given (seconds or [D-]HH:MM:SS; -1 = unset)."""
    if value in {"", "-1"}:
        return ""
    if value.isdigit():
        seconds = int(value)
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return value


def apply_text(slurm: FakeSlurm, text: str, *, dry_run: bool = False, path: str = "pools.yaml") -> ApplyReport:
    """`pool apply` of pools-file TEXT against SLURM (unknown users accepted, fragment next to slurm.conf)."""
    spec = parse_pools_text(text, path)
    options = ApplyOptions(dry_run=dry_run, fragment_path=str(slurm.conf_path.parent / "gpupool-partitions.conf"),
                           user_exists=lambda name: True)
    return apply_pools(spec, slurm, options, lambda live: "unused")


def change_summary(report: ApplyReport) -> set[tuple[str, str, str]]:
    """(kind, name, action) of every change."""
    return {(c.kind, c.name, c.action) for c in report.changes}
