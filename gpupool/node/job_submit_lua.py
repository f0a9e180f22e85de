"""Generate Slurm's job_submit.lua from the pools file (a plain dict, as parsed from YAML).

The policy, applied by slurmctld at submission:
  * a GPU job without --partition is routed to the pools its account owns that can hold it,
    else to every pool that can hold it (borrowing);
  * a multi-node GPU job without --switches gets one (leaves needed for its node count, when
    hosts_per_leaf is known) and a bounded wait for it;
  * a GPU request no pool could ever hold (too many GPUs per node, nodes or GPUs in total) is
    rejected at once with a message to the user, instead of pending forever.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpupool.errors import BadInput

DEFAULT_GPUS_PER_NODE = 8
DEFAULT_SWITCH_WAIT_SECONDS = 300
_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # used with fullmatch: `$` accepts a trailing newline


@dataclass(frozen=True)
class LuaPool:
    name: str
    nodes: int
    gpus_per_node: int
    owners: tuple[str, ...]
    quota: tuple[str, ...] = ()  # a quota pool's accounts: their jobs there run under QOS "<pool>-<account>"


def count_hosts(hostlist: str | list[str]) -> int:
    """Number of hosts in a Slurm hostlist (or list of them)."""
    from gpupool.hostlist import expand_all

    items = hostlist if isinstance(hostlist, list) else [hostlist]
    try:
        return len(expand_all(str(item) for item in items))
    except BadInput as exc:
        raise BadInput(f"pools file: {exc.message}") from None


def lua_pools(document: Mapping[str, Any], default_gpus_per_node: int = DEFAULT_GPUS_PER_NODE,
              node_counts: Mapping[str, int] | None = None) -> list[LuaPool]:
    """The pools of a pools-file dict; `node_counts` overrides counts (for fabric selectors)."""
    pools = document.get("pools")
    if not isinstance(pools, Mapping) or not pools:
        raise BadInput("pools file: `pools` must be a non-empty mapping")
    result: list[LuaPool] = []
    for name, body in pools.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise BadInput(f"pools file: pools: bad pool name {name!r}")
        if not isinstance(body, Mapping):
            raise BadInput(f"pools file: pools.{name}: must be a mapping")
        if node_counts and name in node_counts:
            nodes = int(node_counts[name])
        elif "nodes" in body:
            raw = body["nodes"]
            if any(":" in str(item) for item in (raw if isinstance(raw, list) else [raw])):
                raise BadInput(f"pools file: pools.{name}.nodes: selector {raw!r} needs node_counts")
            nodes = count_hosts(raw)
        else:
            raise BadInput(f"pools file: pools.{name}: missing `nodes`")
        gpus = body.get("gpus_per_node", default_gpus_per_node)
        if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
            raise BadInput(f"pools file: pools.{name}.gpus_per_node: must be a positive integer")
        owners = body.get("owners", [])
        if not isinstance(owners, list) or not all(isinstance(o, str) and _NAME.fullmatch(o) for o in owners):
            raise BadInput(f"pools file: pools.{name}.owners: must be a list of account names")
        quota = body.get("quota") or {}
        if not isinstance(quota, Mapping) or not all(isinstance(a, str) and _NAME.fullmatch(a) for a in quota):
            raise BadInput(f"pools file: pools.{name}.quota: must map account names to GPUs")
        result.append(LuaPool(name, nodes, gpus, tuple(owners) or tuple(quota), tuple(quota)))
    return result


def _lua_string(text: str) -> str:
    """A Lua string literal for any text, like Lua's string.format("%q"): printable ASCII stays,
    every other byte (newlines, quotes' neighbours, UTF-8) becomes a \\ddd escape."""
    out = ['"']
    for byte in text.encode("utf-8", errors="surrogateescape"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    out.append('"')
    return "".join(out)


def render_job_submit_lua(document: Mapping[str, Any], *,
                          default_gpus_per_node: int = DEFAULT_GPUS_PER_NODE,
                          hosts_per_leaf: int | None = None,
                          switch_wait_seconds: int = DEFAULT_SWITCH_WAIT_SECONDS,
                          node_counts: Mapping[str, int] | None = None,
                          source_name: str = "pools file") -> str:
    """The job_submit.lua text for this pools document."""
    pools = lua_pools(document, default_gpus_per_node, node_counts)
    rows = []
    for pool in pools:
        owners = ", ".join(f"[{_lua_string(o)}] = true" for o in pool.owners)
        quota = ", ".join(f"[{_lua_string(a)}] = {_lua_string(f'{pool.name}-{a}')}" for a in pool.quota)
        rows.append(f"  {{ name = {_lua_string(pool.name)}, nodes = {pool.nodes}, "
                    f"gpus_per_node = {pool.gpus_per_node}, owners = {{ {owners} }}, quota = {{ {quota} }} }},")
    leaf = "nil" if not hosts_per_leaf else str(int(hosts_per_leaf))
    # Never a raw file name in a comment: a name holding a newline would start a line of code.
    header = ("-- job_submit.lua generated by gpupool from the pools file GENERATED_FROM names:\n"
              "-- do not edit by hand, regenerate it when the pools change.\n"
              f"local GENERATED_FROM = {_lua_string(source_name)}\n")
    return header + _TEMPLATE.replace("@POOLS@", "\n".join(rows)) \
        .replace("@HOSTS_PER_LEAF@", leaf).replace("@SWITCH_WAIT@", str(int(switch_wait_seconds)))


_TEMPLATE = r"""
local POOLS = {
@POOLS@
}
local HOSTS_PER_LEAF = @HOSTS_PER_LEAF@  -- hosts under one leaf switch (nil: unknown)
local SWITCH_WAIT = @SWITCH_WAIT@        -- seconds a job may wait for its --switches count

local function unset(value)
  return value == nil or value == slurm.NO_VAL or value == slurm.NO_VAL16 or value == 0
end

-- GPUs named in a TRES string such as "gres:gpu:4", "gres:gpu:a100:2" or "gres/gpu=8".
local function gpus_in(tres)
  if tres == nil or tres == "" then return nil end
  local total, found = 0, false
  for item in string.gmatch(tres, "[^,]+") do
    if string.find(item, "gpu", 1, true) then
      found = true
      local count = string.match(item, "[:=](%d+)$")
      total = total + (tonumber(count) or 1)
    end
  end
  if found then return total end
  return nil
end

local function split_names(text)
  local names = {}
  for name in string.gmatch(text or "", "[^,]+") do table.insert(names, name) end
  return names
end

local function largest(field)
  local best = 0
  for _, pool in ipairs(POOLS) do
    local value = field(pool)
    if value > best then best = value end
  end
  return best
end

-- Why `pool` can never run the request, or nil if it could.
local function misfit(pool, per_node, total, nodes)
  if per_node and per_node > pool.gpus_per_node then
    return string.format("%d GPUs per node, %s nodes have %d", per_node, pool.name, pool.gpus_per_node)
  end
  if nodes and nodes > pool.nodes then
    return string.format("%d nodes, %s has %d", nodes, pool.name, pool.nodes)
  end
  if total and total > pool.nodes * pool.gpus_per_node then
    return string.format("%d GPUs, %s has %d", total, pool.name, pool.nodes * pool.gpus_per_node)
  end
  return nil
end

-- The quota QOS a job in these partitions must run under: when every one is a quota pool giving
-- this account the same QOS (a quota pool's partition allows no other QOS), else nil.
local function quota_qos(names, account, pool_by_name)
  local qos = nil
  for _, name in ipairs(names) do
    local pool = pool_by_name[name]
    if pool == nil or pool.quota[account] == nil then return nil end
    if qos ~= nil and qos ~= pool.quota[account] then return nil end
    qos = pool.quota[account]
  end
  return qos
end

local function set_quota_qos(job_desc, account, pool_by_name)
  if job_desc.qos ~= nil and job_desc.qos ~= "" then return end
  local qos = quota_qos(split_names(job_desc.partition), account, pool_by_name)
  if qos ~= nil then job_desc.qos = qos end
end

function slurm_job_submit(job_desc, part_list, submit_uid)
  local per_node = gpus_in(job_desc.tres_per_node)
  local per_job = gpus_in(job_desc.tres_per_job)
  local per_task = gpus_in(job_desc.tres_per_task)
  local per_socket = gpus_in(job_desc.tres_per_socket)
  if per_node == nil and per_job == nil and per_task == nil and per_socket == nil then
    return slurm.SUCCESS  -- not a GPU job: not ours to route
  end
  local nodes = nil
  if not unset(job_desc.min_nodes) then nodes = job_desc.min_nodes end
  local total = per_job
  if total == nil and per_node ~= nil and nodes ~= nil then total = per_node * nodes end
  if total == nil and per_task ~= nil and not unset(job_desc.num_tasks) then
    total = per_task * job_desc.num_tasks
  end

  local requested = job_desc.partition
  local pool_by_name = {}
  for _, pool in ipairs(POOLS) do pool_by_name[pool.name] = pool end
  local account = job_desc.account or job_desc.default_account or ""

  if requested ~= nil and requested ~= "" then
    -- The user chose: only refuse when every named partition is a pool that can never fit.
    local reasons = {}
    for _, name in ipairs(split_names(requested)) do
      local pool = pool_by_name[name]
      if pool == nil then return slurm.SUCCESS end
      local why = misfit(pool, per_node, total, nodes)
      if why == nil then
        set_quota_qos(job_desc, account, pool_by_name)
        return slurm.SUCCESS
      end
      table.insert(reasons, why)
    end
    slurm.log_user("gpupool: this GPU request can never run in partition %s: %s",
                   requested, table.concat(reasons, "; "))
    return slurm.ERROR
  end

  local owned, quota, others = {}, {}, {}
  for _, pool in ipairs(POOLS) do
    if misfit(pool, per_node, total, nodes) == nil then
      if pool.quota[account] then table.insert(quota, pool.name)
      elseif pool.owners[account] then table.insert(owned, pool.name)
      else table.insert(others, pool.name) end
    end
  end
  -- One job has one QOS: its own pools first, else its first quota pool (under its quota QOS).
  if #owned == 0 and #quota > 0 then owned = { quota[1] } end
  local chosen = owned
  if #chosen == 0 then chosen = others end
  if #chosen == 0 then
    local asked = {}
    if per_node then table.insert(asked, per_node .. " GPUs per node") end
    if nodes then table.insert(asked, nodes .. " nodes") end
    if total then table.insert(asked, total .. " GPUs in total") end
    slurm.log_user("gpupool: no GPU pool can ever hold this request (%s); "
                   .. "the largest pools have %d GPUs per node, %d nodes, %d GPUs",
                   table.concat(asked, ", "),
                   largest(function(p) return p.gpus_per_node end), largest(function(p) return p.nodes end),
                   largest(function(p) return p.nodes * p.gpus_per_node end))
    return slurm.ERROR
  end
  job_desc.partition = table.concat(chosen, ",")
  set_quota_qos(job_desc, account, pool_by_name)
  slurm.log_info("gpupool: job from uid %d (account %s) routed to %s", submit_uid, account, job_desc.partition)

  if nodes ~= nil and nodes > 1 and unset(job_desc.req_switch) and HOSTS_PER_LEAF ~= nil then
    job_desc.req_switch = math.ceil(nodes / HOSTS_PER_LEAF)
    if unset(job_desc.wait4switch) then job_desc.wait4switch = SWITCH_WAIT end
  end
  return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return slurm.SUCCESS
end

slurm.log_info("gpupool job_submit.lua loaded (%d pools)", #POOLS)
return slurm.SUCCESS
"""


def main(argv: list[str] | None = None) -> int:
    """`python -m gpupool.node.job_submit_lua POOLS.yaml [-o OUT] [--hosts-per-leaf N] ...`."""
    import argparse
    import sys

    from gpupool.fsutil import atomic_write_text
    from gpupool.validate import load_source

    parser = argparse.ArgumentParser(prog="python -m gpupool.node.job_submit_lua",
                                     description="Generate job_submit.lua from a gpupool pools file.")
    parser.add_argument("pools")
    parser.add_argument("-o", "--output")
    parser.add_argument("--gpus-per-node", type=int, default=DEFAULT_GPUS_PER_NODE)
    parser.add_argument("--hosts-per-leaf", type=int)
    parser.add_argument("--switch-wait", type=int, default=DEFAULT_SWITCH_WAIT_SECONDS,
                        help="seconds a multi-node job may wait for its switch count")
    args = parser.parse_args(argv)
    try:
        # The same loader as `pool apply`: deep nesting, bytes that are not UTF-8, aliases and
        # duplicate keys are one `file:line:` error, never a traceback.
        document = load_source(args.pools).data
        if not isinstance(document, dict):
            raise BadInput(f"{args.pools}: not a YAML mapping")
        text = render_job_submit_lua(document, default_gpus_per_node=args.gpus_per_node,
                                     hosts_per_leaf=args.hosts_per_leaf,
                                     switch_wait_seconds=args.switch_wait, source_name=args.pools)
    except BadInput as exc:
        sys.stderr.write(f"gpupool: error: {exc}\n")
        return 4
    if args.output:
        try:
            atomic_write_text(args.output, text)
        except BadInput as exc:  # full disk, read-only directory: one line, the old file kept
            sys.stderr.write(f"gpupool: error: {exc}\n")
            return 4
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
