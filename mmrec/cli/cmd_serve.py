"""``mmrec serve``: the HTTP API and web page over one library, models loaded once."""

from __future__ import annotations

from pathlib import Path

import click

from mmrec.cli.common import device_option, library_option


@click.command("serve")
@library_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--api-key",
    envvar="MMREC_API_KEY",
    default=None,
    help="Required for writes when set, and required to listen beyond loopback. [env: MMREC_API_KEY]",
)
@click.option(
    "--workers-threads",
    "threads",
    type=click.IntRange(1, 256),
    default=32,
    show_default=True,
    help="Threads running library calls; API requests above this many in flight get 429.",
)
@click.option(
    "--no-record-served",
    is_flag=True,
    help="Do not record served recommendations as impressions.",
)
@click.option(
    "--max-upload-mb", type=click.IntRange(1, 4096), default=64, show_default=True, help="Request body limit."
)
@click.option("--cors-origin", "cors_origins", multiple=True, help="Allow this web origin (repeatable).")
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@device_option
def serve_cmd(
    library: Path,
    host: str,
    port: int,
    api_key: str | None,
    threads: int,
    no_record_served: bool,
    max_upload_mb: int,
    cors_origins: tuple[str, ...],
    access_log: bool,
    device: str,
) -> None:
    """Serve the library over HTTP: JSON API under /api (docs at /docs) and the web page at /."""
    import uvicorn

    from mmrec.api import Library
    from mmrec.server import check_bind, create_app

    check_bind(host, api_key)
    lib = Library(library, device=device, create=False)
    app = create_app(
        lib,
        api_key=api_key,
        max_upload_bytes=max_upload_mb << 20,
        max_concurrency=threads,
        record_served=not no_record_served,
        cors_origins=cors_origins,
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"mmrec serve: {lib.path} at http://{shown}:{port}/ (API docs: /docs)", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)
    finally:
        lib.close()
