"""``simgen sign OUT --cert CHAIN.pem --key KEY.pem``: C2PA sidecars for a dataset's images (extra ``[provenance]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def sign(
    out: Annotated[Path, typer.Argument(help="A finished image dataset (or a mix of images).")],
    cert: Annotated[Path, typer.Option("--cert", help="PEM: the signing certificate, then its CA certificates.")],
    key: Annotated[Path, typer.Option("--key", help="PEM: the signing certificate's private key.")],
    alg: Annotated[
        str, typer.Option(help="Signature algorithm matching the key: es256, es384, ps256, ed25519 ...")
    ] = "es256",
    tsa_url: Annotated[str | None, typer.Option(help="Time-stamp authority URL (default: no time-stamp).")] = None,
) -> None:
    """Sign every synthetic image in OUT with a C2PA sidecar manifest (images/000000.c2pa); verify checks them."""
    from simgen.console import err as console
    from simgen.provenance.signing import sign_dataset

    record = sign_dataset(out, cert, key, alg=alg, tsa_url=tsa_url)
    console.print(f"[green]signed[/] {record['sidecars']} images in {out} as {record['signer'] or 'the signer'} "
                  f"({record['alg']}, digitalSourceType algorithmicMedia)", soft_wrap=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the ``sign`` command to the ``simgen`` app.

    Args:
        app: The root typer app.
    """
    from simgen.cli import clean_errors  # simgen.cli calls this once clean_errors is defined

    app.command(name="sign")(clean_errors(sign))
