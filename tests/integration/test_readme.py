"""The README's five-minute tour, run as written.

Every ```sh block of the "A five-minute tour" section runs, in order, in one
bash session against a fresh `mailcast serve` started the way `make run`
starts it (default database ./var/mailcast.db on SQLite, default relay
dir:./var/outbox; on PostgreSQL only --database differs).  Two lines are
adapted, as a reader would: `export OP=…` becomes the line the server
printed, and `export API=…` gets the test's port.

The lines `# …` that follow a command are its expected output: each must
match an output line of its block, in order, with `…` standing for any text
(ids, keys, times).  Every HTTP error the tour causes must be one the README
shows (its status on a line of its own), so a command that silently captures
an error body fails the test.
"""

import re
import subprocess

from harness import REPO, Server



README = REPO / "README.md"


def tour_blocks():
    text = README.read_text()
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def expected_lines(block):
    """The whole-line comments of a block: its expected output, in order."""
    return [line[2:] for line in block.splitlines() if line.startswith("# ")]


def pattern(expected):
    return re.compile(".*".join(re.escape(part) for part in expected.split("…")))


def check_block(n, block, output):
    lines = [line.rstrip() for line in output.splitlines()]
    at = 0
    for want in expected_lines(block):
        rx = pattern(want)
        while at < len(lines) and not rx.fullmatch(lines[at]):
            at += 1
        assert at < len(lines), (
            f"README tour block {n}: expected output line\n  {want}\nnot found (in order) in\n"
            + output + "\n--- block ---\n" + block)
        at += 1


def test_readme_blocks_have_expectations():
    blocks = tour_blocks()
    assert len(blocks) >= 8
    assert blocks[0].startswith("export OP=mco_")
    # The tour shows what happens: every block but the setup shows output.
    for block in blocks[1:]:
        assert expected_lines(block), block


def test_readme_tour_runs_as_written(store, tmp_path, new_database):
    workdir = tmp_path / "tour"
    args = []
    if store == "postgres":
        args = ["--database", new_database()]
    srv = Server(workdir, database=None, operator_key=None, args=args, name="tour")
    srv.start()
    try:
        banner = srv.stdout()
        m = re.search(r"^\s*(export OP=mco_[0-9a-f]{64})$", banner, re.M)
        assert m, f"the server does not print the tour's `export OP=` line:\n{banner}"

        blocks = tour_blocks()
        script = ["set -euo pipefail"]
        for n, block in enumerate(blocks):
            if n == 0:
                assert "export OP=mco_..." in block and "export API=http://127.0.0.1:8080" in block
                block = block.replace("export API=http://127.0.0.1:8080",
                                      f"export API={srv.base}")
                block = re.sub(r"^export OP=mco_\.\.\..*$", m.group(1), block, flags=re.M)
            script.append(f"echo '@@block {n}@@'")
            script.append(block)
        res = subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir,
                             capture_output=True, text=True, timeout=90)
        assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
        parts = re.split(r"^@@block (\d+)@@\n", res.stdout, flags=re.M)
        outputs = {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}
        assert sorted(outputs) == list(range(len(blocks)))
        for n, block in enumerate(blocks):
            check_block(n, block, outputs[n])

        # Every error response of the tour is one the README shows.
        shown = sorted(int(e) for b in blocks for e in expected_lines(b)
                       if re.fullmatch(r"[45]\d\d", e))
        srv.wait_for_log(r"path=\"[^\"]*dkim-keys")
        seen = sorted(int(s) for s in re.findall(r"\bstatus=([45]\d\d)\b", srv.stderr()))
        assert seen == shown, srv.stderr()
    finally:
        srv.stop()
