"""What several test files share: running the command line and checking its one error line."""

from __future__ import annotations

from jaxmarl_lab.cli import main


def one_error_line(capsys, argv: list[str]) -> str:
    """Runs the CLI, checks exit status 2 and exactly one `jaxmarl-lab: error:` line on stderr, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxmarl-lab: error: "), err
    assert "Traceback" not in err
    return lines[0]
