"""Send a prepared corpus to an object store: `aerecon-prepare output=s3://bucket/prefix` (also
gs://, azure://, and LitData's `local:` stand-in, a folder reached as a store), through obstore,
the store client LitData installs.

Credentials come from each store's usual places (for S3 boto3's chain, as LitData's reader uses:
AWS_ACCESS_KEY_ID and friends, AWS_ENDPOINT_URL, ~/.aws; for GCS and Azure their environment
variables), never from aerecon's configs. A file is sent unless the store holds it with the same
content: the same size, and the same SHA-256 as the store's own aerecon.json records or as this
staging folder's record of what it sent (`.sent.json`); so a rerun after a stop sends only what is
missing, and a rerun after songs changed sends every changed chunk. aerecon.json, which tells a
reader the corpus is complete, is sent last, and is removed first whenever anything else is
about to change, so that no reader ever takes partial chunks for a complete corpus.
"""

import json
import logging
from pathlib import Path

import obstore

from aerecon.utils.errors import DataError
from aerecon.utils.files import atomic_write, sha256

log = logging.getLogger(__name__)


def store(url: str):
    """The obstore store whose root is `url`."""
    from obstore.store import LocalStore, from_url

    if url.startswith("local:"):
        return LocalStore(prefix=Path(url[len("local:") :]).expanduser().absolute(), mkdir=True)
    if url.split("://", 1)[0] in ("s3", "s3a"):
        from obstore.auth.boto3 import Boto3CredentialProvider

        try:
            credentials = Boto3CredentialProvider()
        except ValueError:  # boto3 found none
            raise DataError(
                f"{url}: no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
                f"AWS_ENDPOINT_URL for an S3-compatible store), or write them to ~/.aws/credentials"
            ) from None
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
    # dot names are the writer's own (LitData's .checkpoints, aerecon-prepare's lock and this record)
    files = sorted(
        (
            path
            for path in folder.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        ),
        key=lambda path: (path.name == last, path.name == "index.json", str(path)),
    )
    recorded = {name: r["sha256"] for name, r in json.loads((folder / last).read_text()).get("files", {}).items()}
    sent_record = folder / ".sent.json"
    sent_to = json.loads(sent_record.read_text()) if sent_record.is_file() else {}
    sent = sent_to.setdefault(url, {})
    in_store = {name: r["sha256"] for name, r in ((there and read_json(url, last)) or {}).get("files", {}).items()}
    names = {path: path.relative_to(folder).as_posix() for path in files}
    digests = {path: recorded.get(names[path]) or sha256(path) for path in files}
    send = [
        path
        for path in files
        if there.get(names[path]) != path.stat().st_size
        or digests[path] not in (in_store.get(names[path]), sent.get(names[path]))
    ]
    if not send:
        log.info("%s holds every file of %s already: nothing to send", url, folder)
        return
    if last in there and any(path.name != last for path in send):
        obstore.delete(target, last)  # until everything else is there, the corpus there is not complete
    size = sum(path.stat().st_size for path in send)
    log.info("Sending %d files (%.0f MiB) of %s to %s", len(send), size / 2**20, folder, url)
    try:
        for path in send:
            obstore.put(target, names[path], path)
            sent[names[path]] = digests[path]
    finally:
        atomic_write(sent_record, lambda f: f.write(json.dumps(sent_to, indent=1).encode()))
    log.info("Sent %s to %s", folder, url)
