"""README's own example: its rules file passes `check`, and the `explain` command it
prints fires that file's rule (a reader copies both and expects them to agree)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.integration.procs import run_cli

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_rules() -> str:
    text = README.read_text()
    section = text[text.index("### The rules file"):]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


def readme_explain() -> list[str]:
    block = re.search(r"```sh\n(careers-edge check -c rules\.toml.*?)```", README.read_text(),
                      re.S).group(1)
    line = re.search(r"careers-edge explain .*?[^\\]\n", block.replace("\\\n", " "), re.S)
    args = shlex.split(line.group(0))
    assert args[:3] == ["careers-edge", "explain", "-c"]
    return args[1:]


async def test_readme_explain_fires_the_readme_rule(tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text(readme_rules())
    env = {"META_ACCESS_TOKEN": "readme-token"}
    checked = await run_cli("check", "-c", "rules.toml", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    done = await run_cli(*readme_explain(), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "FIRES  'application submitted' → ApplicationCompleted" in done.stdout, done.stdout
    assert "job_name = Backend Engineer" in done.stdout
