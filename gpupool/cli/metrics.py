"""`gpupool metrics`: fragmentation, pool GPUs and fabric audit status for Prometheus.

prometheus_client does the exposition: a registry holding gpupool's collector
(`gpupool.observe.metrics.FamiliesCollector`) is written to stdout, to a node_exporter textfile
atomically (`--textfile`, its `write_to_textfile`), or served on a local port (`--serve`,
127.0.0.1 by default, its WSGI app), collecting afresh on every scrape.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import click

from gpupool.app import observe as observe_app
from gpupool.app.observe import MetricsOptions
from gpupool.cli.context import app
from gpupool.cli.render import warn
from gpupool.cli.status import shape_options
from gpupool.errors import EnvError, InputError, UsageError
from gpupool.fsutil import check_output_path
from gpupool.observe.metrics import Family, metrics_registry

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer
    from wsgiref.types import StartResponse, WSGIEnvironment

__all__ = ["MetricsOptions", "collect_families", "collect_text", "make_server", "metrics", "parse_listen"]

ReadFamilies = Callable[[], Iterable[Family]]


def collect_families(options: MetricsOptions, warn: Callable[[str], None]) -> list[Family]:
    """The metric families, collected with the current command's context (its config and Slurm)."""
    ctx = app()
    return observe_app.metrics_families(options, ctx.config(), ctx.slurm_client, ctx.command_runner, warn)


def collect_text(options: MetricsOptions, warn: Callable[[str], None]) -> str:
    """The metrics text (Prometheus text format 0.0.4), collected once."""
    from prometheus_client import generate_latest

    return generate_latest(metrics_registry(lambda: collect_families(options, warn))).decode()


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]") or "127.0.0.1", int(port)


def make_server(host: str, port: int, read: ReadFamilies) -> WSGIServer:
    """A threading HTTP server answering GET of the `metrics` path (and the root) with prometheus_client's
    exposition of freshly collected families; other paths are 404, a failed collection a 500 that says why."""
    from wsgiref.simple_server import WSGIRequestHandler
    from wsgiref.simple_server import make_server as make_wsgi_server

    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    exposition = make_wsgi_app(metrics_registry(read))

    def metrics_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if str(environ.get("PATH_INFO", "/")).strip("/") not in {"metrics", ""}:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"gpupool: error: not found; the metrics are served on the path `metrics`\n"]
        try:
            body: Iterable[bytes] = exposition(environ, start_response)
        except Exception as exc:  # a failed scrape must answer, not kill the server
            start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"gpupool: error: {exc}\n".encode()]
        return body

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
            pass  # no access log on stderr

    try:
        return make_wsgi_server(host, port, metrics_app, ThreadingWSGIServer, handler_class=QuietHandler)
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

        def collect() -> list[Family]:
            with ctx.scope(cleanup=False):
                return collect_families(options, warn)

        server = make_server(host, port, collect)
        sys.stderr.write(f"gpupool: serving metrics on http://{host}:{server.server_address[1]}/metrics\n")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return
    if textfile:
        from prometheus_client import write_to_textfile

        try:  # prometheus_client writes PATH.<pid>.<thread> and renames it: node_exporter never reads half a file
            write_to_textfile(textfile, metrics_registry(lambda: collect_families(options, warn)))
        except OSError as exc:
            raise InputError(f"{textfile}: cannot write the textfile ({exc.strerror})") from None
        return
    sys.stdout.write(collect_text(options, warn))
