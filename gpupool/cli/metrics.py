"""`gpupool metrics`: fragmentation, pool GPUs and fabric audit status for Prometheus.

Writes a node_exporter textfile atomically (`--textfile`), or serves the same text on a local
port (`--serve`, 127.0.0.1 by default), collecting afresh on every scrape.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import click

from gpupool.app import observe as observe_app
from gpupool.app.observe import MetricsOptions
from gpupool.cli.context import app
from gpupool.cli.render import warn
from gpupool.cli.status import shape_options
from gpupool.errors import EnvError, InputError, UsageError
from gpupool.fsutil import atomic_write_text, check_output_path

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

__all__ = ["MetricsOptions", "collect_text", "make_server", "metrics", "parse_listen"]


def collect_text(options: MetricsOptions, warn: Callable[[str], None]) -> str:
    """The metrics text, collected with the current command's context (its config and Slurm)."""
    ctx = app()
    return observe_app.metrics_text(options, ctx.config(), ctx.slurm_client, ctx.command_runner, warn)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]") or "127.0.0.1", int(port)


def make_server(host: str, port: int, collect: Callable[[], str]) -> Any:
    """A threading HTTP server answering GET of the `metrics` path (and the root) with freshly collected text."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's method name
            if self.path.split("?")[0].strip("/") not in {"metrics", ""}:
                self.send_error(404)
                return
            try:
                body = collect().encode()
                code = 200
            except Exception as exc:  # a failed scrape must answer, not kill the server
                body, code = f"gpupool: error: {exc}\n".encode(), 500
            self.send_response(code)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
            pass  # no access log on stderr

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise EnvError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@click.command("metrics")
@click.option("--textfile", metavar="PATH", help="Write a node_exporter textfile (atomically) instead of stdout.")
@click.option("--serve", is_flag=True, help="Serve the metrics over HTTP until interrupted.")
@click.option("--listen", default="127.0.0.1:9464", show_default=True, metavar="HOST:PORT",
              help="Address for --serve (loopback by default).")
@click.option("--fabric", "fabric_path", metavar="F", help="Fabric file (default $GPUPOOL_FABRIC or the config file).")
@click.option("--free", "free_path", metavar="FILE", help="Free state as JSON {\"host\": free_gpus}; default: ask Slurm.")
@click.option("--partition", metavar="P", help="Only nodes of this Slurm partition count as free.")
@shape_options
@click.option("--pools", "pools_file", metavar="POOLS.yaml", help="Pools file (default: gpupool's partition fragment).")
@click.option("--fragment", metavar="PATH", help="slurm.conf fragment listing gpupool's partitions.")
@click.option("--no-pools", is_flag=True, help="Leave out the per-pool GPUs (no Slurm pool queries).")
@click.option("--audit-json", metavar="FILE",
              help="Saved `gpupool fabric audit --json` output (default: run the structural checks on the fabric).")
@click.option("--no-audit", is_flag=True, help="Leave out the fabric audit.")
@click.option("--node-check-json", metavar="FILE",
              help="This node's saved `gpupool node check --json` output (e.g. written by the Epilog).")
def metrics(textfile: str | None, serve: bool, listen: str, fabric_path: str | None, free_path: str | None,
            partition: str | None, shapes: str | None, gpus_per_node: int | None, pools_file: str | None,
            fragment: str | None, no_pools: bool, audit_json: str | None, no_audit: bool,
            node_check_json: str | None) -> None:
    """Fragmentation, pool GPUs and fabric audit status in the Prometheus text format."""
    if textfile and serve:
        raise UsageError("give --textfile or --serve, not both")
    if app().json:
        raise UsageError("metrics prints Prometheus text, not JSON: drop --json (README: which commands take it)")
    if textfile:
        check_output_path(textfile)  # a missing directory fails before Slurm is read
    observe_app.check_shapes(shapes, gpus_per_node)  # bad shapes are a usage error before anything is read
    app()  # the context must exist before a server thread collects
    options = MetricsOptions(fabric_path, free_path, partition, shapes, gpus_per_node, pools_file, fragment,
                             audit_json, audit=not no_audit, pools=not no_pools, node_check_json=node_check_json)
    if serve:
        ctx = click.get_current_context()
        host, port = parse_listen(listen)

        def collect() -> str:
            with ctx.scope(cleanup=False):
                return collect_text(options, warn)

        server = make_server(host, port, collect)
        sys.stderr.write(f"gpupool: serving metrics on http://{host}:{server.server_address[1]}/metrics\n")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return
    text = collect_text(options, warn)
    if textfile:
        try:
            atomic_write_text(textfile, text)
        except OSError as exc:
            raise InputError(f"{textfile}: cannot write the textfile ({exc.strerror})") from None
        return
    sys.stdout.write(text)
