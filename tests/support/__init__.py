"""Shared test support, importable from tests and scripts alike (the repository root on the path):

- `tests.support.helpers`: repository paths, fixtures, golden files, `require_tool`;
- `tests.support.oracles`: the independent readers (captures, topology.conf/yaml, hostlists) and the
  brute-force placement oracle;
- `tests.support.captures`: ibnetdiscover text written from hand-listed cables (director sites);
- `tests.support.pools_slurm`: an in-memory Slurm that runs `pool apply`'s scontrol/sacctmgr commands;
- `tests.support.lending_slurm`: the sacct/sshare answers the lending report tests work by hand;
- `tests.support.slurm2511`: the 8-node Slurm 25.11 cluster on loopback.

The fake NVML library and fake sysfs trees are `tests.fakenvml`.
"""
