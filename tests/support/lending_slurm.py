"""The sacct and sshare answers the lending report tests work by hand (tests/unit/test_observe_lending.py,
test_observe_report.py), and a Slurm that gives them: `FakeSlurm()` answers sacct, sshare and nine idle
4-GPU nodes gpu001..gpu009."""

from __future__ import annotations

HEADER = "JobIDRaw|JobID|State|Account|User|Partition|QOS|Submit|Eligible|Start|End|NodeList|AllocTRES"
# Window 2026-11-28 00:00 .. 2026-11-29 00:00 (24 h), "now" = the window's end.
SACCT = HEADER + """
100|100|COMPLETED|vision|alice|vision|normal|2026-11-27T23:00:00|2026-11-27T23:00:00|2026-11-27T23:30:00|2026-11-28T02:30:00|gpu[001-002]|billing=2,cpu=2,gres/gpu=8,mem=2G,node=2
101|101|PREEMPTED|llm|bob|scavenger|scavenger|2026-11-28T03:00:00|2026-11-28T03:00:00|2026-11-28T04:00:00|2026-11-28T06:00:00|gpu[001-004]|cpu=4,gres/gpu=16,node=4
101|101|RUNNING|llm|bob|llm|normal|2026-11-28T06:00:00|2026-11-28T06:00:00|2026-11-28T07:00:00|Unknown|gpu[005-006]|cpu=2,gres/gpu=8,node=2
102|102|COMPLETED|vision|alice|vision|normal|2026-11-28T05:50:00|2026-11-28T05:50:00|2026-11-28T06:00:00|2026-11-28T08:00:00|gpu[001-004]|cpu=4,gres/gpu=16,node=4
103|103|CANCELLED by 1000|vision|alice|scavenger|scavenger|2026-11-28T09:00:00|2026-11-28T09:00:00|2026-11-28T10:00:00|2026-11-28T11:30:00|gpu005|cpu=1,gres/gpu=4,node=1
104|104|PENDING|llm|bob|llm|normal|2026-11-28T20:00:00|2026-11-28T20:00:00|Unknown|Unknown|None assigned|
105|105|RUNNING|vision|alice|vision|normal|2026-11-28T22:00:00|2026-11-28T22:30:00|2026-11-28T23:00:00|Unknown|gpu003|cpu=1,gres/gpu:a100=2,node=1
106|106|COMPLETED|vision|alice|vision|normal|2026-11-27T20:00:00|2026-11-27T20:00:00|2026-11-28T01:00:00|2026-11-28T02:00:00|gpu004|cpu=1,gres/gpu=4,node=1
107|107|REQUEUED|llm|bob|llm|normal|2026-11-28T11:00:00|2026-11-28T11:00:00|2026-11-28T12:00:00|2026-11-28T13:00:00|gpu007|cpu=1,gres/gpu=4,node=1
108|108|COMPLETED|llm|bob|gpu|normal|2026-11-28T00:00:00|2026-11-28T00:00:00|2026-11-28T00:00:00|2026-11-28T01:00:00|gpu009|cpu=1,gres/gpu=4,node=1
"""
SSHARE = """\
Account|User|RawShares|NormShares|RawUsage|NormUsage|EffectvUsage|FairShare|LevelFS|GrpTRESMins|TRESRunMins
root|||0.000000|611||1.000000||||cpu=0
 llm||70|0.700000|15|0.026153|0.026153||26.241184||cpu=0
  llm|bob|1|1.000000|15|0.026153|1.000000|0.750000|1.000000||cpu=0
 vision||30|0.300000|295|0.484061|0.484061||0.607605||cpu=0
  vision|alice|1|1.000000|295|0.484061|1.000000|0.500000|1.000000||cpu=0
"""


class FakeSlurm:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> str:
        self.calls.append(argv)
        if argv[0] == "sacct":
            return SACCT
        if argv[0] == "sshare":
            return SSHARE
        if argv[:4] == ["scontrol", "-o", "-d", "show"]:
            return "".join(f"NodeName=gpu{i:03d} Gres=gpu:4 GresUsed=gpu:0 State=IDLE Partitions=gpu\n"
                           for i in range(1, 10))
        if argv[:3] == ["scontrol", "-o", "show"]:
            return ""
        raise AssertionError(argv)
