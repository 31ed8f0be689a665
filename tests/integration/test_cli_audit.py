"""``taskcreds audit`` in-process (``main(argv)``) on audit logs written in the agent's format.

The sample log here is the one shown in docs/audit.md, and a test checks that the docs show this
command's real output.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskcreds.cli import main

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
INSTANCE = (
    f"arn:aws:ecs:us-east-1:{ACCOUNT}:container-instance/prod/9a8b7c6d5e4f30211203f4e5d6c7b8a9"
)
WEB = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
WORKER = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/5a6b7c8d9e0f11223344556677889900"
REPORT = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/c0ffee00c0ffee00c0ffee00c0ffee00"
BOTO = "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.0 os/linux#5.10.228-219.884.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.43.11"
GO = "aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64"
FLUENT = "aws-sdk-go/1.44.0 (go1.21.8; linux; amd64)"
JAVA = "aws-sdk-java/2.25.60 Linux/5.10.228-219.884.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy"
UTC = timezone.utc


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ok(moment: datetime, client: str, agent: str, task: str, event: str = "GetCredentials") -> str:
    return (
        f'{stamp(moment)} 200 {client} "/v2/credentials" "{agent}" {task} {event} 2 prod '
        f"{INSTANCE}\n"
    )


def write_sample(directory: Path) -> Path:
    """A host's /var/log/ecs: three size-rotated files, the oldest gzipped, the live one last.

    - web (boto3, 172.17.0.3): an execution-role fetch at start, then its task role twice in
      about an hour: a healthy, caching SDK.
    - worker (Go SDK v2, 172.17.0.4): a new client per job, so a fetch every 20 s for half an
      hour, and 429s once it bursts.
    - report (Java SDK v2, 172.17.0.5): three fetches.
    - curl from 172.17.0.9 without the credentials ID (400), a line that is not an audit line,
      and a last line cut off while it was being written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    t0 = datetime(2026, 11, 29, 20, 58, 12, tzinfo=UTC)
    oldest = [
        ok(t0, "172.17.0.3:41200", FLUENT, WEB, "GetCredentialsExecutionRole"),
        ok(t0 + timedelta(seconds=111), "172.17.0.3:41234", BOTO, WEB),
    ]
    worker_start = datetime(2026, 11, 29, 21, 10, 0, tzinfo=UTC)
    worker = [
        ok(worker_start + timedelta(seconds=20 * n), f"172.17.0.4:{50000 + n}", GO, WORKER)
        for n in range(91)
    ]
    oldest += worker[:40]
    middle = worker[40:]
    burst = worker_start + timedelta(minutes=25, seconds=7)
    middle += [
        f'{stamp(burst)} 429 172.17.0.4:{51000 + n} "/v2/credentials" "{GO}" -\n' for n in range(4)
    ]
    middle.append(ok(datetime(2026, 11, 29, 21, 45, 20, tzinfo=UTC), "172.17.0.3:41300", BOTO, WEB))
    middle.sort()
    report_start = datetime(2026, 11, 29, 22, 0, 5, tzinfo=UTC)
    live = [
        ok(report_start, "172.17.0.5:39001", JAVA, REPORT),
        ok(report_start + timedelta(minutes=2), "172.17.0.5:39002", JAVA, REPORT),
        f'{stamp(report_start + timedelta(minutes=3))} 400 172.17.0.9:52144 "/v2/credentials" "curl/8.5.0" -\n',
        "--- ecs-agent restarted ---\n",
        ok(report_start + timedelta(minutes=5, seconds=31), "172.17.0.5:39003", JAVA, REPORT),
        ok(report_start + timedelta(minutes=6), "172.17.0.5:39004", JAVA, REPORT)[:120],
    ]
    with gzip.open(directory / "audit.log.2.gz", "wt", encoding="utf-8") as out:
        out.writelines(oldest)
    (directory / "audit.log.1").write_text("".join(middle))
    (directory / "audit.log").write_text("".join(live))
    return directory


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample in ./logs, with the working directory set so paths print as in the docs."""
    monkeypatch.chdir(tmp_path)
    write_sample(tmp_path / "logs")
    return Path("logs")


def test_text_report(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["audit", str(logs)], capsys)
    assert code == 0
    assert err == ""
    blocks = out.split("\n\n")
    assert blocks[0].startswith(
        f"task {WORKER}\n  requests  91 in 30m: 3.03 a minute  << fetches too often\n"
    )
    assert "  sdk       aws-sdk-go-v2 1.30.0 ×91" in blocks[0]
    # equal request counts: by ARN
    assert blocks[1].startswith(f"task {WEB}\n  requests  3 in 47m: 0.06 a minute\n")
    assert blocks[2].startswith(f"task {REPORT}\n  requests  3 in 5m: 0.54 a minute\n")
    assert "  first     2026-11-29T20:58:12Z\n  last      2026-11-29T21:45:20Z\n" in blocks[1]
    assert "  roles     task role ×2, execution role ×1" in blocks[1]
    assert "  sdk       boto3 1.43.11 ×2, aws-sdk-go 1.44.0 ×1" in blocks[1]
    assert "  status    200 ×3" in blocks[1]
    assert f"  instance  {INSTANCE}" in blocks[1]
    assert "  client    172.17.0.3" in blocks[1]
    assert "  sdk       aws-sdk-java 2.25.60 ×3" in blocks[2]
    assert re.search(
        r"400\s+172\.17\.0\.9\s+1\s+2026-11-29T22:03:05Z\s+2026-11-29T22:03:05Z\s+-", out
    )
    throttled = re.search(r"429\s+172\.17\.0\.4\s+4\s+(\S+)\s+(\S+)\s+(\S+)", out)
    assert throttled is not None
    assert throttled.groups() == (
        "2026-11-29T21:35:07Z",
        "2026-11-29T21:35:07Z",
        "prod/5a6b7c8d9e0f11223344556677889900",
    )
    assert "fetches too often (more than once a minute on average, at least 10 requests)" in out
    assert "  prod/5a6b7c8d9e0f11223344556677889900  91 in 30m: 3.03 a minute" in out
    assert "one provider per process" in out
    assert "  logs/audit.log:4: --- ecs-agent restarted ---" in out
    assert "  logs/audit.log:6: " in out
    assert "    (no newline at the end: cut off while being written or copied)" in out
    assert out.endswith(
        "totals: 3 files, 104 lines, 102 parsed, 2 unparsed, 3 tasks, 1 error, 4 throttled\n"
    )


def test_json_report(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["audit", str(logs), "--json"], capsys)
    assert code == 0
    assert err == ""
    document = json.loads(out)
    assert document["ok"] is True
    assert document["totals"] == {
        "files": 3,
        "lines": 104,
        "parsed": 102,
        "unparsed": 2,
        "in_range": 102,
        "tasks": 3,
        "errors": 1,
        "throttled": 4,
    }
    assert document["files"] == ["logs/audit.log.2.gz", "logs/audit.log.1", "logs/audit.log"]
    worker, web, report = document["tasks"]
    assert worker["task_arn"] == WORKER
    assert worker["fetches_too_often"] is True
    assert worker["per_minute"] == 3.03
    assert worker["first"] == "2026-11-29T21:10:00Z"
    assert worker["last"] == "2026-11-29T21:40:00Z"
    assert worker["user_agents"] == [{"sdk": "aws-sdk-go-v2", "version": "1.30.0", "requests": 91}]
    assert web["event_types"] == {"GetCredentials": 2, "GetCredentialsExecutionRole": 1}
    assert web["statuses"] == {"200": 3}
    assert web["clusters"] == ["prod"]
    assert web["container_instances"] == [INSTANCE]
    assert report["fetches_too_often"] is False
    assert document["fetches_too_often"] == [
        {"task_arn": WORKER, "requests": 91, "span_minutes": 30.0, "per_minute": 3.03}
    ]
    assert document["throttled"] == [
        {
            "status": 429,
            "client": "172.17.0.4",
            "count": 4,
            "first": "2026-11-29T21:35:07Z",
            "last": "2026-11-29T21:35:07Z",
            "tasks": [WORKER],
        }
    ]
    assert document["errors"][0]["client"] == "172.17.0.9"
    assert document["errors"][0]["tasks"] == []
    assert [(u["file"], u["line"], u["reason"]) for u in document["unparsed_lines"]] == [
        ("logs/audit.log", 4, "not an audit line"),
        ("logs/audit.log", 6, "no newline at the end: cut off while being written or copied"),
    ]
    assert document["filters"] == {"since": None, "until": None, "task": None}


def test_filters(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "audit",
            str(logs / "audit.log.1"),
            str(logs / "audit.log"),
            "--since",
            "2026-11-29T21:30:00Z",
            "--until",
            "2026-11-29T22:00:05Z",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    document = json.loads(out)
    assert document["filters"]["since"] == "2026-11-29T21:30:00Z"
    assert [task["task_arn"] for task in document["tasks"]] == [
        WORKER,
        WEB,
    ]  # REPORT starts at 22:00:05
    assert document["tasks"][0]["first"] == "2026-11-29T21:30:00Z"
    assert document["totals"]["in_range"] == 36
    assert document["totals"]["parsed"] == 60

    code, out, _ = run(["audit", str(logs), "--task", "c0ffee00c0ffee00c0ffee00c0ffee00"], capsys)
    assert code == 0
    assert out.startswith(f"task {REPORT}\n")
    assert WORKER not in out
    assert "throttled (429" not in out
    assert "fetches too often" not in out
    assert "1 task, 0 errors, 0 throttled" in out


def test_relative_times(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Durations count back from now: 100000 days ago is before the sample, whatever the clock.
    code, out, _ = run(["audit", str(logs), "--since", "100000d", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["totals"]["in_range"] == 102
    code, out, _ = run(["audit", str(logs), "--until", "100000d"], capsys)
    assert code == 0
    assert out.startswith("no credential requests from a task in the selected range\n")
    assert "102 parsed, 2 unparsed, 0 in the time range, 0 tasks" in out


def test_fetches_too_often_only_for_the_busy_task(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["audit", str(logs), "--task", WEB], capsys)
    assert code == 0
    assert "fetches too often" not in out
    assert "0.06 a minute" in out


def test_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["audit", str(tmp_path / "audit.log")], capsys)
    assert code == 1
    assert out == ""
    assert f"taskcreds: error: no such file or directory: {tmp_path / 'audit.log'}" in err
    assert "hint: the audit log is on the container instance" in err

    code, out, _ = run(["audit", str(tmp_path), "--json"], capsys)
    assert code == 1
    document = json.loads(out)
    assert document["ok"] is False
    assert document["exit_code"] == 1
    assert document["error"]["message"] == f"no audit.log files in directory {tmp_path}"


@pytest.mark.parametrize(
    "argv",
    [
        ["audit"],
        ["audit", "logs", "--since", "yesterday"],
        ["audit", "logs", "--until", "2026-11-29"],
        ["audit", "logs", "--since", "2026-11-29T22:00:00Z", "--until", "2026-11-29T21:00:00Z"],
    ],
)
def test_bad_arguments(logs: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 1
    assert out == ""
    assert "error" in err


def test_an_unreadable_gzip_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = gzip.compress(
        "".join(
            ok(datetime(2026, 11, 29, 21, tzinfo=UTC), "172.17.0.3:1", BOTO, WEB)
            for _ in range(500)
        ).encode()
    )
    (tmp_path / "audit.log.1.gz").write_bytes(data[:-20])
    code, out, err = run(["audit", str(tmp_path)], capsys)
    assert code == 0
    assert err.startswith(f"warning: stopped reading {tmp_path / 'audit.log.1.gz'}: ")
    assert "totals: 1 file, " in out


def test_help_shows_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["audit", "--help"], capsys)
    assert code == 0
    assert "python -m taskcreds audit /var/log/ecs/" in out
    assert "--since T" in out


# -- the docs show real output -------------------------------------------------------------------


def docs_block(command: str) -> str:
    """The output under ``$ COMMAND`` in a console block of docs/audit.md."""
    text = (ROOT / "docs" / "audit.md").read_text()
    match = re.search(rf"^\$ {re.escape(command)}\n(.*?)^```", text, re.M | re.S)
    assert match is not None, f"docs/audit.md has no console block for `{command}`"
    return match.group(1)


@pytest.mark.parametrize(
    "args",
    [
        ["logs/"],
        ["logs/", "--task", "c0ffee00c0ffee00c0ffee00c0ffee00", "--json"],
    ],
)
def test_docs_show_the_real_output(
    args: list[str], logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["audit", *args], capsys)
    assert code == 0
    assert docs_block(" ".join(["python -m taskcreds audit", *args])) == out


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--since", "0001-01-01T00:00:00+01:00"),
        ("--until", "9999-12-31T23:59:59-01:00"),
        ("--since", "9" * 5000 + "w"),
    ],
)
def test_a_time_outside_the_calendar_is_a_usage_error(
    logs: Path, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in ([], ["--json"]):
        code, out, err = run(["audit", str(logs), option, value, *extra], capsys)
        assert code == 1
        assert out == ""
        assert f"taskcreds audit: error: argument {option}: " in err
        assert "internal error" not in err
        assert "Traceback" not in err


def test_text_output_escapes_what_the_log_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moment = datetime(2026, 11, 29, 21, tzinfo=UTC)
    hostile_task = WEB + "\u202e"
    log = tmp_path / "audit\x1b[2J.log"
    log.write_text(
        ok(moment, "172.17.0.3:1", "evil\x1b]0;owned\x07/1.0 x", hostile_task)
        + 'junk \x1b[31m red \x9b "quoted"\n'
        + f'{stamp(moment)} 500 172.17.0.\x1b[9:2 "/v2/credentials" "curl/8" -\n'
    )
    code, out, err = run(["audit", str(log)], capsys)
    assert code == 0
    for char in "\x1b\x07\x9b\u202e":
        assert char not in out + err
    assert "sdk       evil\\x1b]0;owned\\x07/1.0 ×1" in out
    assert f"task {WEB}\\u202e" in out
    assert 'audit\\x1b[2J.log:2: junk \\x1b[31m red \\x9b "quoted"' in out
    assert "172.17.0.\\x1b[9" in out  # a client address in the errors table
    code, out, _ = run(["audit", str(log), "--json"], capsys)
    document = json.loads(out)
    assert document["tasks"][0]["task_arn"] == hostile_task  # JSON keeps it, escaped by json
    assert "\x1b" not in out


def test_a_huge_line_is_reported_with_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moment = datetime(2026, 11, 29, 21, tzinfo=UTC)
    log = tmp_path / "audit.log.1.gz"
    with gzip.open(log, "wb") as out:
        out.write(ok(moment, "172.17.0.3:1", BOTO, WEB).encode())
        out.write(b"a" * (5 * 1024 * 1024) + b"\n")
    code, out, _ = run(["audit", str(log)], capsys)
    assert code == 0
    assert f"  {log}:2: {'a' * 160}…\n    (longer than 64 KiB" in out
    assert "totals: 1 file, 2 lines, 1 parsed, 1 unparsed" in out
