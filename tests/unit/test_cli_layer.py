"""taskcreds.cli: one command table, exit codes defined once, shared options, one error path."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path

import pytest

from taskcreds.cli import COMMANDS, main
from taskcreds.cli import _options as options
from taskcreds.cli._common import ExitCode, Output, UsageError, exit_code_for, exit_codes_help

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_every_command_in_the_table_has_its_module_parts() -> None:
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    for command in COMMANDS:
        module = importlib.import_module(command.module)
        assert callable(module.add_arguments)
        assert callable(module.run)
        assert isinstance(module.EXAMPLE, str)


def test_top_level_help_lists_the_table_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command.name in out
        assert " ".join(command.summary.split()[:4]) in " ".join(out.split())
    assert exit_codes_help() in out


@pytest.mark.parametrize("name", ["show", "health", "policy", "audit"])
def test_every_command_help_renders_the_exit_codes(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([name, "--help"]) == 0
    assert exit_codes_help() in capsys.readouterr().out


def test_the_help_block_is_the_definition() -> None:
    rows = exit_codes_help().splitlines()[1:]
    assert [int(row.split()[0]) for row in rows] == [code.value for code in ExitCode]
    for row, code in zip(rows, ExitCode, strict=True):
        assert row.split(None, 1)[1] == code.meaning


def test_docs_list_the_same_exit_codes() -> None:
    table = DOCS.read_text(encoding="utf-8").split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = [int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)]
    assert documented == [code.value for code in ExitCode]


def test_a_usage_error_exits_1_and_serialises_itself() -> None:
    error = UsageError("bad", hint="fix it", prog="taskcreds x", usage="usage: taskcreds x\n")
    assert exit_code_for(error) == ExitCode.USAGE == 1
    assert error.to_dict() == {"type": "UsageError", "message": "bad", "hint": "fix it",
                               "retryable": False}  # fmt: skip


def test_a_usage_error_is_rendered_one_way(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    err = io.StringIO()
    parse = UsageError("argument --x: bad", prog="taskcreds show", usage="usage: taskcreds show\n")
    Output(err=err).fail(parse)
    assert err.getvalue() == "usage: taskcreds show\ntaskcreds show: error: argument --x: bad\n"
    out = io.StringIO()
    assert Output(json_mode=True, out=out).fail(UsageError("bad", hint="h")) == 1
    document = json.loads(out.getvalue())
    assert document == {"ok": False, "exit_code": 1, "error": UsageError("bad", hint="h").to_dict()}


def test_policy_usage_error_json_is_the_error_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--bucket", "x", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["error"]["type"] == "UsageError"
    assert document["error"]["hint"]


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (options.positive_seconds, "0", "more than 0 seconds"),
        (options.positive_seconds, "nan", "more than 0 seconds"),
        (options.non_negative_int, "-1", "must not be negative"),
        (options.non_negative_int, "x", "not a whole number"),
        (options.positive_int, "0", "must be positive"),
        (options.non_negative_float, "inf", "finite"),
        (options.non_negative_float, "x", "not a number"),
        (options.positive_float, "0", "must be positive"),
        (options.port, "65536", "not a port number"),
        (options.http_status, "600", "not an HTTP status"),
        (options.credentials_id, "a/b", "1 to 128"),
        (options.allowed_host, "a:80", "without a port"),
        (options.time_bound, "yesterday", "."),
    ],
)
def test_option_types_refuse(parse: object, text: str, message: str) -> None:
    assert callable(parse)
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_option_types_accept() -> None:
    assert options.positive_seconds("2.5") == 2.5
    assert options.port("0") == 0
    assert options.http_status("503") == 503
    assert options.non_negative_float("0") == 0.0
    assert options.credentials_id("abc-1") == "abc-1"


def test_timeout_is_one_option(capsys: pytest.CaptureFixture[str]) -> None:
    helps = set()
    for name in ("show", "doctor", "export"):
        assert main([name, "--help"]) == 0
        out = capsys.readouterr().out
        helps.add(" ".join(out.split("--timeout TIMEOUT", 2)[2].split()[:6]))
    assert len(helps) == 1


def test_a_broken_pipe_exits_141_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object) -> int:
        raise BrokenPipeError

    monkeypatch.setattr("taskcreds.cli.policy.run", broken)
    assert main(["policy", "--bucket", "app-a"]) == ExitCode.BROKEN_PIPE == 141
    assert capsys.readouterr().err == ""
