"""Proof, not guess: the policy `taskcreds policy` prints is enforced by a real IAM engine.

One SeaweedFS (S3 + STS + IAM) holds several roles. Each role's *only* policy is the permissions
policy printed by ``python -m taskcreds policy --json`` for some set of features, scoped to
``s3://app-scoped/apps/x/``. Each role's real STS session credentials travel the real path
(SeaweedFS AssumeRole -> the local agent-compatible endpoint -> CredentialProvider -> Uploader).

- Role ``Scoped`` (every feature): every uploader feature works; writes outside the prefix or
  to the bucket ``other`` are refused with AccessDeniedError.
- Roles missing one feature: that feature's operation is refused, naming the IAM action.

SeaweedFS 4.48 needs no extra statement: session credentials work with the generated policy alone
(``sts:ValidateSession``, which its example iam.json grants, turned out not to be required), so
each role is loaded with the generated document unchanged, as
:func:`test_each_role_holds_exactly_the_generated_policy` checks.

What SeaweedFS 4.48 does *not* enforce as AWS S3 does, said where it is tested:

- the ``x-amz-tagging`` header of PutObject / CreateMultipartUpload is accepted without
  ``s3:PutObjectTagging`` (AWS requires it); the separate PutObjectTagging call is enforced;
- AbortMultipartUpload is allowed by ``s3:PutObject`` as well as by ``s3:AbortMultipartUpload``
  (AWS requires the latter); a role with neither is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

import taskcreds
from taskcreds import AccessDeniedError, ObjectExistsError
from taskcreds.cli import main
from taskcreds.local import AgentServer
from taskcreds.policy import DEFAULT_FEATURES, FEATURES
from taskcreds.upload import Uploader
from taskcreds.upload._errors import translate
from taskcreds_demo.seaweed import SeaweedFS
from tests.conftest import running_seaweed

MiB = 1024 * 1024
BUCKET = "app-scoped"
PREFIX = "apps/x/"
OTHER_BUCKET = "other"


def without(feature: str) -> tuple[str, ...]:
    return tuple(f for f in FEATURES if f != feature)


#: Role name -> the features its generated policy was printed for.
ROLE_FEATURES: dict[str, tuple[str, ...]] = {
    "Scoped": FEATURES,
    "Default": DEFAULT_FEATURES,
    "NoMultipart": without("multipart"),
    "NoTags": without("tags"),
    "NoRead": without("read"),
    "NoList": without("list"),
    "ReadOnly": ("read",),
}


def printed_policy(features: tuple[str, ...]) -> dict[str, Any]:
    """The permissions policy exactly as ``python -m taskcreds policy --json`` prints it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "policy",
                "--bucket",
                BUCKET,
                "--prefix",
                PREFIX,
                "--features",
                ",".join(features),
                "--account",
                "123456789012",
                "--json",
            ]
        )
    assert code == 0
    document: dict[str, Any] = json.loads(out.getvalue())["permissions_policy"]
    return document


POLICIES = {role: printed_policy(features) for role, features in ROLE_FEATURES.items()}


@pytest.fixture(scope="module")
def sw() -> Iterator[SeaweedFS]:
    """SeaweedFS whose roles each hold one generated policy and nothing else."""
    with running_seaweed(
        roles={"Scoped": BUCKET},
        buckets=[BUCKET, OTHER_BUCKET],
        role_policies=POLICIES,
    ) as server:
        yield server


UploaderFactory = Callable[..., Uploader]


@contextlib.contextmanager
def role(sw: SeaweedFS, name: str) -> Iterator[UploaderFactory]:
    """Serve ``name``'s STS credentials from a local agent; yield a factory of Uploaders."""
    made: list[Uploader] = []
    with (
        AgentServer(lambda: sw.assume_role(name)) as server,
        taskcreds.CredentialProvider(server.environment()) as provider,
    ):

        def uploader(bucket: str = BUCKET, prefix: str = PREFIX, **kwargs: Any) -> Uploader:
            made.append(
                Uploader(
                    bucket,
                    prefix,
                    provider=provider,
                    endpoint_url=sw.s3_endpoint,
                    region_name=sw.region,
                    environ={},
                    **kwargs,
                )
            )
            return made[-1]

        try:
            yield uploader
        finally:
            for each in made:
                each.close()


def role_client(sw: SeaweedFS, name: str) -> Any:
    """A plain boto3 S3 client signed with ``name``'s session credentials (for raw calls)."""
    return sw.client("s3", sw.assume_role(name))


def unique(name: str) -> str:
    return f"{uuid.uuid4().hex[:8]}-{name}"


def admin_keys(sw: SeaweedFS, bucket: str, prefix: str = "") -> list[str]:
    with closing(sw.admin_client("s3")) as s3:
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for item in page.get("Contents", [])]


def admin_get(sw: SeaweedFS, key: str) -> bytes:
    with closing(sw.admin_client("s3")) as s3:
        body: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body


def http_get(url: str) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: 127.0.0.1 only
        return session.get(url, timeout=10)


def denied(error: ClientError, key: str | None) -> AccessDeniedError:
    """taskcreds' own translation of a raw S3 refusal (the Uploader's error path)."""
    translated = translate(error, bucket=BUCKET, key=key)
    assert isinstance(translated, AccessDeniedError), translated
    return translated


def test_each_role_holds_exactly_the_generated_policy(sw: SeaweedFS) -> None:
    config = sw.iam_config()
    attached = {r["roleName"]: r["attachedPolicies"] for r in config["roles"]}
    documents = {p["name"]: p["document"] for p in config["policies"]}
    for name, policy in POLICIES.items():
        assert attached[name] == [f"{name}Policy"]
        assert documents[f"{name}Policy"] == policy  # nothing added for SeaweedFS
    actions = {a for s in POLICIES["Scoped"]["Statement"] for a in s["Action"]}
    assert not any(action.startswith("sts:") for action in actions)


# -- every feature, with the policy for every feature ------------------------------------------


def test_upload_single_put(sw: SeaweedFS) -> None:
    with role(sw, "Scoped") as uploader:
        result = uploader().upload_bytes(b"hello\n", unique("one.txt"))
    assert not result.multipart
    assert admin_get(sw, result.key) == b"hello\n"


def test_multipart_upload_of_11_mib(sw: SeaweedFS) -> None:
    data = bytes(range(256)) * (11 * MiB // 256)
    with role(sw, "Scoped") as uploader:
        up = uploader(part_size=5 * MiB, multipart_threshold=5 * MiB)
        result = up.upload_bytes(data, unique("big.bin"))
        assert up.list_incomplete() == []
    assert result.multipart
    assert admin_get(sw, result.key) == data


def test_overwrite_false_refused_single_and_multipart(sw: SeaweedFS) -> None:
    small, big = unique("taken.txt"), unique("taken.bin")
    with role(sw, "Scoped") as uploader:
        up = uploader(part_size=5 * MiB, multipart_threshold=5 * MiB)
        up.upload_bytes(b"first", small)
        up.upload_bytes(b"a" * (6 * MiB), big)
        with pytest.raises(ObjectExistsError):
            up.upload_bytes(b"second", small, overwrite=False)
        with pytest.raises(ObjectExistsError):
            up.upload_bytes(b"b" * (6 * MiB), big, overwrite=False)
        assert up.list_incomplete() == []  # the refused multipart upload was aborted
    assert admin_get(sw, PREFIX + small) == b"first"
    assert admin_get(sw, PREFIX + big) == b"a" * (6 * MiB)


def test_tags_single_and_multipart(sw: SeaweedFS) -> None:
    with role(sw, "Scoped") as uploader:
        up = uploader(part_size=5 * MiB, multipart_threshold=5 * MiB)
        one = up.upload_bytes(b"t", unique("tagged.txt"), tags={"team": "a"})
        two = up.upload_bytes(b"t" * (6 * MiB), unique("tagged.bin"), tags={"team": "b"})
    with closing(sw.admin_client("s3")) as s3:
        assert s3.get_object_tagging(Bucket=BUCKET, Key=one.key)["TagSet"] == [
            {"Key": "team", "Value": "a"}
        ]
        assert s3.get_object_tagging(Bucket=BUCKET, Key=two.key)["TagSet"] == [
            {"Key": "team", "Value": "b"}
        ]


def test_upload_dir_skips_unchanged_files(sw: SeaweedFS, tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<h1>hi</h1>")
    (root / "css" / "a.css").write_text("h1{}")
    sub = unique("site")
    with role(sw, "Scoped") as uploader:
        up = uploader(prefix=f"{PREFIX}{sub}/")
        first = up.upload_dir(root)
        second = up.upload_dir(root)
    assert sorted(r.key for r in first.uploaded) == [
        f"{PREFIX}{sub}/css/a.css",
        f"{PREFIX}{sub}/index.html",
    ]
    assert second.uploaded == []
    assert sorted(second.skipped) == sorted(r.key for r in first.uploaded)


def test_list_and_abort_incomplete_stay_in_prefix(sw: SeaweedFS) -> None:
    prefix = f"{PREFIX}{unique('mp')}/"
    mine, theirs = prefix + "dangling.bin", "apps/y/" + unique("dangling.bin")
    with closing(sw.admin_client("s3")) as s3:
        s3.create_multipart_upload(Bucket=BUCKET, Key=mine)
        theirs_id = s3.create_multipart_upload(Bucket=BUCKET, Key=theirs)["UploadId"]
    with role(sw, "Scoped") as uploader:
        up = uploader(prefix=prefix)
        assert [u.key for u in up.list_incomplete()] == [mine]
        assert [u.key for u in up.abort_incomplete(older_than=timedelta(0))] == [mine]
        assert up.list_incomplete() == []
    with closing(sw.admin_client("s3")) as s3:
        left = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        assert theirs in [u["Key"] for u in left]  # another prefix's upload is untouched
        s3.abort_multipart_upload(Bucket=BUCKET, Key=theirs, UploadId=theirs_id)


def test_presigned_get(sw: SeaweedFS) -> None:
    key = unique("shared.txt")
    with role(sw, "Scoped") as uploader:
        up = uploader()
        up.upload_bytes(b"for your eyes", key)
        answer = http_get(up.presigned_url(key, expires_in=300))
    assert answer.status_code == 200
    assert answer.content == b"for your eyes"


def test_list_only_under_the_prefix(sw: SeaweedFS) -> None:
    key = unique("listed.txt")
    with role(sw, "Scoped") as uploader:
        uploader().upload_bytes(b"x", key)
    with closing(role_client(sw, "Scoped")) as s3:
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])
        assert PREFIX + key in [item["Key"] for item in listed]
        for other in ({"Prefix": "apps/y/"}, {"Prefix": "apps/"}, {}):
            with pytest.raises(ClientError) as info:
                s3.list_objects_v2(Bucket=BUCKET, **other)
            assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_outside_the_prefix_and_other_bucket_denied(sw: SeaweedFS) -> None:
    with role(sw, "Scoped") as uploader:
        for bucket, prefix in ((BUCKET, "apps/y/"), (BUCKET, "apps/xx/"), (OTHER_BUCKET, PREFIX)):
            up = uploader(bucket, prefix, part_size=5 * MiB, multipart_threshold=5 * MiB)
            with pytest.raises(AccessDeniedError) as info:
                up.upload_bytes(b"not yours", "intruder.txt")
            assert info.value.action == "s3:PutObject"
            assert info.value.bucket == bucket
            with pytest.raises(AccessDeniedError) as info:
                up.upload_bytes(b"m" * (6 * MiB), "intruder.bin")  # CreateMultipartUpload
            assert info.value.action == "s3:PutObject"
    assert admin_keys(sw, BUCKET, "apps/y/") == []
    assert admin_keys(sw, BUCKET, "apps/xx/") == []
    assert admin_keys(sw, OTHER_BUCKET) == []
    with closing(role_client(sw, "Scoped")) as s3, pytest.raises(ClientError):
        s3.delete_object(Bucket=BUCKET, Key=PREFIX + "anything")  # no feature grants delete


# -- the default features ------------------------------------------------------------------------


def test_default_features_upload_multipart_no_overwrite_and_cleanup(sw: SeaweedFS) -> None:
    """upload,multipart: puts, multipart, If-None-Match refusals (overwrite-check needs no
    action of its own) and abort_incomplete all work; reading back does not."""
    key, prefix = unique("d.bin"), f"{PREFIX}{unique('default')}/"
    with closing(sw.admin_client("s3")) as s3:
        s3.create_multipart_upload(Bucket=BUCKET, Key=prefix + "stale.bin")
    with role(sw, "Default") as uploader:
        up = uploader(prefix=prefix, part_size=5 * MiB, multipart_threshold=5 * MiB)
        assert up.upload_bytes(b"d" * (11 * MiB), key).multipart
        with pytest.raises(ObjectExistsError):
            up.upload_bytes(b"e", key, overwrite=False)
        aborted = up.abort_incomplete(older_than=timedelta(0))
        assert [u.key for u in aborted] == [prefix + "stale.bin"]
        answer = http_get(up.presigned_url(key))
    assert answer.status_code == 403


# -- a feature left out: its operation is refused, naming the action ---------------------------


def test_without_multipart_listing_uploads_denied(sw: SeaweedFS) -> None:
    key = PREFIX + unique("stuck.bin")
    with role(sw, "NoMultipart") as uploader:
        up = uploader(part_size=5 * MiB, multipart_threshold=5 * MiB)
        # CreateMultipartUpload, UploadPart and Complete need only s3:PutObject, as on AWS.
        assert up.upload_bytes(b"p" * (6 * MiB), unique("still.bin")).multipart
        for call in (up.list_incomplete, up.abort_incomplete):
            with pytest.raises(AccessDeniedError) as info:
                call()
            assert info.value.action == "s3:ListBucketMultipartUploads"
            assert "s3:ListBucketMultipartUploads" in str(info.value)
    # SeaweedFS gap (4.48): it lets s3:PutObject abort a multipart upload too, so a role with
    # PutObject but not s3:AbortMultipartUpload can still abort there (AWS S3 refuses it).
    # Asserted as observed; the action is enforced for a role with neither, just below.
    with closing(role_client(sw, "NoMultipart")) as s3:
        upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)


def test_abort_multipart_upload_is_enforced(sw: SeaweedFS) -> None:
    key = PREFIX + unique("stuck.bin")
    with closing(sw.admin_client("s3")) as admin:
        upload_id = admin.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    with closing(role_client(sw, "ReadOnly")) as s3, pytest.raises(ClientError) as raw:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
    assert denied(raw.value, key).action == "s3:AbortMultipartUpload"
    with closing(role_client(sw, "Scoped")) as s3:  # the multipart feature grants it
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)


def test_without_tags_the_tagging_call_is_denied(sw: SeaweedFS) -> None:
    with role(sw, "NoTags") as uploader:
        result = uploader().upload_bytes(b"t", unique("t.txt"), tags={"team": "a"})
    # SeaweedFS gap (4.48): it accepts the x-amz-tagging header of PutObject (and
    # CreateMultipartUpload) without s3:PutObjectTagging and stores the tags. AWS S3 refuses such
    # a request with AccessDenied. Asserted as observed, so a SeaweedFS that starts enforcing it
    # shows up here; the feature's action itself is enforced on the PutObjectTagging call below.
    with closing(sw.admin_client("s3")) as admin:
        assert admin.get_object_tagging(Bucket=BUCKET, Key=result.key)["TagSet"] == [
            {"Key": "team", "Value": "a"}
        ]
    with closing(role_client(sw, "NoTags")) as s3, pytest.raises(ClientError) as raw:
        s3.put_object_tagging(
            Bucket=BUCKET, Key=result.key, Tagging={"TagSet": [{"Key": "team", "Value": "b"}]}
        )
    assert denied(raw.value, result.key).action == "s3:PutObjectTagging"
    with closing(role_client(sw, "Scoped")) as s3:  # the same call with the tags feature
        s3.put_object_tagging(
            Bucket=BUCKET, Key=result.key, Tagging={"TagSet": [{"Key": "team", "Value": "b"}]}
        )


def test_without_read_no_presigned_get_and_no_skip_unchanged(sw: SeaweedFS, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    key = unique("r.txt")
    with role(sw, "NoRead") as uploader:
        up = uploader(prefix=f"{PREFIX}{unique('dir')}/")
        up.upload_bytes(b"r", key)
        assert http_get(up.presigned_url(key)).status_code == 403
        up.upload_dir(tmp_path)
        again = up.upload_dir(tmp_path)
        # The uploader treats a refused HeadObject as "not there" and uploads again.
        assert again.skipped == []
        assert len(again.uploaded) == 1
        full_key = up.key_for(key)
    with closing(role_client(sw, "NoRead")) as s3, pytest.raises(ClientError) as raw:
        s3.head_object(Bucket=BUCKET, Key=full_key)
    assert denied(raw.value, full_key).action == "s3:GetObject"


def test_without_list_listing_denied(sw: SeaweedFS) -> None:
    with closing(role_client(sw, "NoList")) as s3, pytest.raises(ClientError) as raw:
        s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)
    assert raw.value.response["Error"]["Code"] == "AccessDenied"


def test_read_only_cannot_write(sw: SeaweedFS) -> None:
    key = PREFIX + unique("seeded.txt")
    with closing(sw.admin_client("s3")) as admin:
        admin.put_object(Bucket=BUCKET, Key=key, Body=b"seeded")
    with role(sw, "ReadOnly") as uploader:
        up = uploader()
        with pytest.raises(AccessDeniedError) as info:
            up.upload_bytes(b"w", unique("w.txt"))
        assert info.value.action == "s3:PutObject"
        answer = http_get(up.presigned_url(key.removeprefix(PREFIX)))
    assert answer.content == b"seeded"


# -- doctor's write probe with the least-privilege role --------------------------------------------


def test_doctor_probe_is_left_at_its_key_without_delete_object(
    sw: SeaweedFS, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default features grant no s3:DeleteObject: the probe stays, as doctor --help says."""
    for name in (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in sw.environment().items():
        monkeypatch.setenv(name, value)
    prefix = f"{PREFIX}{unique('doctor')}/"
    with AgentServer(lambda: sw.assume_role("Default")) as server:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.full_uri)
        code = main(["doctor", "--json", "--timeout", "5", "--bucket", BUCKET, "--prefix", prefix])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    probe = report["steps"][-1]
    assert probe["name"] == "write probe"
    left = admin_keys(sw, BUCKET, prefix)
    assert len(left) == 1
    assert left[0].startswith(prefix + ".taskcreds-doctor-")
    assert f"s3://{BUCKET}/{left[0]} " in probe["detail"]  # the step names the key it left
    assert len(probe["warnings"]) == 1
    assert "left behind: s3:DeleteObject refused" in probe["warnings"][0]
    with closing(sw.admin_client("s3")) as s3:
        s3.delete_object(Bucket=BUCKET, Key=left[0])
