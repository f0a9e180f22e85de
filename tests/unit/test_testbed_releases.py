"""The testbed's Slurm releases: per-release configs, the chroot's cache key, mirror, and wrappers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import chroot, config
from testbed.errors import TestbedError


def test_cgroup_conf_only_from_23_11_where_slurmd_needs_it_disabled(tmp_path: Path) -> None:
    assert config.render_cgroup_conf(config.Settings(state_dir=tmp_path, slurm="22.05")) is None
    for release in ("24.11", "26.05"):
        text = config.render_cgroup_conf(config.Settings(state_dir=tmp_path, slurm=release))
        assert text is not None
        assert [ln for ln in text.splitlines() if not ln.startswith("#")] == ["CgroupPlugin=disabled"]


def test_a_chroot_release_puts_its_wrappers_before_the_venv(tmp_path: Path) -> None:
    host = config.env_exports(config.Settings(state_dir=tmp_path), "/bin")
    assert host["PATH"].split(":")[0] == str(config.VENV_BIN)
    assert host["GPUPOOL_TESTBED_SLURM"] == "22.05"
    env = config.env_exports(config.Settings(state_dir=tmp_path, slurm="26.05"), "/bin")
    assert env["PATH"].split(":")[:2] == [f"{tmp_path}/bin", str(config.VENV_BIN)]
    assert env["GPUPOOL_TESTBED_SLURM"] == "26.05"


def test_host_mirror_reads_deb822_and_one_line_sources_and_skips_security(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
                      "Components: main\n\nTypes: deb\n# a comment\nURIs: http://mirror.example/debian/\n"
                      "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert chroot.host_mirror([deb822]) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# deb http://old/debian bookworm main\n"
                        "deb http://sec.example/debian-security bookworm-security main\n"
                        "deb [arch=amd64 signed-by=/k.gpg] http://other.example/debian bookworm main\n")
    assert chroot.host_mirror([one_line]) == "http://other.example/debian"
    with pytest.raises(TestbedError):
        chroot.host_mirror([tmp_path / "missing.list"])


def test_chroot_key_changes_with_suite_and_mirror_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPUPOOL_TESTBED_CACHE", str(tmp_path))
    a = chroot.chroot_for("24.11", "http://m/debian")
    assert a.suite == "trixie" and a.root.parent == tmp_path
    assert a.root.name.startswith("chroot-trixie-")
    assert chroot.chroot_for("24.11", "http://m/debian") == a
    assert chroot.chroot_for("24.11", "http://n/debian").root != a.root
    assert chroot.chroot_for("26.05", "http://m/debian").suite == "sid"
    with pytest.raises(TestbedError):
        chroot.chroot_for("22.05", "http://m/debian")  # the host's release has no chroot


def test_inside_argv_keeps_arguments_intact_through_the_shell(tmp_path: Path) -> None:
    argv = chroot.inside_argv(tmp_path / "root", ["echo", "a b", "$HOME", "'q'"], [Path("/tmp")])
    # The shell script receives root, the bind count and binds, then argv as separate words.
    script_at = argv.index("-c") + 1
    assert argv[script_at + 1:] == ["sh", str(tmp_path / "root"), "1", "/tmp", "echo", "a b", "$HOME", "'q'"]
    # Run the same script with mount/chroot replaced by echoes: argv reaches the program unchanged.
    fake = argv[script_at].replace("mount ", "true ").replace(
        'exec chroot "$r" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c',
        'exec /bin/sh -c').replace('mkdir -p "$r$1"; ', "")
    out = subprocess.run(["sh", "-c", fake, *argv[script_at + 1:]], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert out == "a b $HOME 'q'\n"


def test_host_binds_drop_paths_already_inside_another(tmp_path: Path) -> None:
    binds = chroot.host_binds(Path("/tmp/x/state"))
    assert binds[0] == Path("/tmp") and Path("/tmp/x/state") not in binds
    assert config.REPO in binds or any(b in config.REPO.parents for b in binds)


def test_unknown_release_is_a_usage_error(tmp_path: Path) -> None:
    script = config.REPO / "scripts" / "testbed"
    proc = subprocess.run(["python3", str(script), "up", "--state-dir", str(tmp_path), "--slurm", "23.02"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "invalid choice: '23.02'" in proc.stderr


def test_host_view_is_mounted_before_the_chroot_mounts_and_only_when_asked(tmp_path: Path) -> None:
    plain = chroot.inside_argv(tmp_path / "root", ["slurmd"], [Path("/tmp")])
    viewed = chroot.inside_argv(tmp_path / "root", ["slurmd"], [Path("/tmp")], host_view=True)
    assert "--rbind / " not in plain[plain.index("-c") + 1]
    script = viewed[viewed.index("-c") + 1]
    assert script.index(f'mount --rbind / "$r{config.HOST_VIEW}"') < script.index('mount -t proc')


def test_chroot_release_runs_job_scripts_through_a_shim_into_the_host_userland(tmp_path: Path) -> None:
    state = tmp_path / "state"
    program = tmp_path / "my prolog"
    program.write_text('#!/bin/sh\necho "args=$*"\necho "cwd=$(pwd)"\necho "path=$PATH"\n')
    program.chmod(0o755)
    s = config.Settings(state_dir=state, slurm="26.05", prolog=str(program), task_prolog="/t")
    lines = config.render_slurm_conf(s, ["gpu001"]).splitlines()
    shim = config.host_script_shim(s, "Prolog")
    assert f"Prolog={shim}" in lines and f"TaskProlog={config.host_script_shim(s, 'TaskProlog')}" in lines
    assert not any(line.startswith("Epilog=") for line in lines)
    host = config.Settings(state_dir=state, prolog=str(program))  # the host's release: no shim
    assert f"Prolog={program}" in config.render_slurm_conf(host, ["gpu001"]).splitlines()
    text = config.render_host_script_shim(s, "Prolog", str(program))
    head = f"exec /usr/sbin/chroot {config.HOST_VIEW} "
    assert head in text
    # Run it with the chroot step left out (we are already in the host's userland).
    workdir = tmp_path / "job dir"
    workdir.mkdir()
    out = subprocess.run(["sh", "-c", text.replace(head, "exec "), "shim", "x y", "z"], capture_output=True,
                         text=True, cwd=workdir, check=True).stdout.splitlines()
    assert out[0] == "args=x y z" and out[1] == f"cwd={workdir}"
    path = out[2].removeprefix("path=").split(":")
    assert path[0] == str(state / "bin") and "/usr/bin" in path  # this release's clients first


def test_client_wrappers_mark_their_commands_as_clients(tmp_path: Path) -> None:
    # Another testbed's `down` must tell a client in a reused mount-namespace number from its own leftovers.
    fake = chroot.Chroot("26.05", "sid", "http://m/debian", tmp_path / "root")
    chroot.write_wrappers(fake, tmp_path / "bin", tmp_path / "state", ["scontrol"])
    text = (tmp_path / "bin" / "scontrol").read_text()
    assert f"export {config.CLIENT_VAR}={tmp_path / 'state'}\n" in text
    assert text.index(f"export {config.CLIENT_VAR}") < text.index("exec ")
