"""Send a prepared corpus to an object store: `aerecon-prepare output=s3://bucket/prefix` (also
gs://, azure://, and LitData's `local:` stand-in, a folder reached as a store), through obstore,
the store client LitData installs.

Credentials come from each store's usual places (for S3 boto3's chain, as LitData's reader uses:
AWS_ACCESS_KEY_ID and friends, AWS_ENDPOINT_URL, ~/.aws; for GCS and Azure their environment
variables), never from aerecon's configs. A file already in the store with the same size is not
sent again, so a rerun after a stop sends only what is missing. aerecon.json, which tells a
reader the corpus is complete, is sent last, and is removed first whenever anything else is
about to change, so that no reader ever takes partial chunks for a complete corpus.
"""

import json
import logging
from pathlib import Path

import obstore

from aerecon.errors import DataError

log = logging.getLogger(__name__)


def store(url: str):
    """The obstore store whose root is `url`."""
    from obstore.store import LocalStore, from_url

    if url.startswith("local:"):
        return LocalStore(prefix=Path(url[len("local:"):]).expanduser().absolute(), mkdir=True)
    if url.split("://", 1)[0] in ("s3", "s3a"):
        from obstore.auth.boto3 import Boto3CredentialProvider

        try:
            credentials = Boto3CredentialProvider()
        except ValueError:  # boto3 found none
            raise DataError(f"{url}: no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
                            f"AWS_ENDPOINT_URL for an S3-compatible store), or write them to ~/.aws/credentials") from None
        return from_url(url, credential_provider=credentials)
    return from_url(url)


def read_json(url: str, name: str) -> dict | None:
    """A JSON file at `url`, or None if there is none."""
    try:
        return json.loads(bytes(obstore.get(store(url), name).bytes()))
    except FileNotFoundError:
        return None


def upload(folder: Path, url: str, last: str) -> None:
    """Every file under `folder` to the same paths under `url`; `last` (a top-level file) last, and
    each split's LitData index after its chunks."""
    target = store(url)
    there = {meta["path"]: meta["size"] for batch in obstore.list(target) for meta in batch}
    files = sorted((path for path in folder.rglob("*") if path.is_file() and ".checkpoints" not in path.parts),
                   key=lambda path: (path.name == last, path.name == "index.json", str(path)))
    sizes = {path: path.stat().st_size for path in files}
    send = [path for path in files if there.get(path.relative_to(folder).as_posix()) != sizes[path]]
    if not send:
        log.info("%s holds every file of %s already: nothing to send", url, folder)
        return
    if last in there and any(path.name != last for path in send):
        obstore.delete(target, last)  # until everything else is there, the corpus there is not complete
    size = sum(sizes[path] for path in send)
    log.info("Sending %d files (%.0f MiB) of %s to %s", len(send), size / 2**20, folder, url)
    for path in send:
        obstore.put(target, path.relative_to(folder).as_posix(), path)
    log.info("Sent %s to %s", folder, url)
