"""The real-world bounce corpus (shared/corpus/bounces, Sisimai's set-of-emails
under its BSD licence) and the agreement measure its README defines.

The corpus is copied, unchanged and with its BSD 2-clause LICENSE, into
tests/corpus/bounces, so a fresh clone anywhere has it; the shared folder
beside the checkout (<repo>/../shared/corpus/bounces) is the source.
MAILCAST_BOUNCE_CORPUS overrides the place.

Run as a script to see every disagreement:
    MAILCAST_BIN=build/mailcast /usr/bin/python3 tests/integration/bouncecorpus.py
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("MAILCAST_BIN") or str(REPO / "mailcast")


def corpus_dir():
    """The corpus directory, or None when it cannot be found."""
    cands = []
    if os.environ.get("MAILCAST_BOUNCE_CORPUS"):
        cands.append(Path(os.environ["MAILCAST_BOUNCE_CORPUS"]))
    cands.append(REPO / "tests" / "corpus" / "bounces")  # the copy in the tree (BSD licence kept)
    cands.append(REPO.parent / "shared" / "corpus" / "bounces")
    try:
        common = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--git-common-dir"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        if common:
            main = (REPO / common).resolve().parent
            cands.append(main.parent / "shared" / "corpus" / "bounces")
    except (OSError, subprocess.SubprocessError):
        pass
    for c in cands:
        if (c / "expected.jsonl").is_file() and (c / "mail").is_dir():
            return c
    return None


_explained = {}


def explain_files(paths):
    """mailcast bounce --explain over many files in one process (one object a
    line, in their order), kept: the agreement is measured twice, with and
    without the notes, and a process per file cost the suite 264 starts."""
    todo = [str(p) for p in paths if str(p) not in _explained]
    for i in range(0, len(todo), 200):
        part = todo[i:i + 200]
        res = subprocess.run([BIN, "bounce", "--explain", *part], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.split("\n")[:-1]  # one object a line, ASCII only
        assert len(lines) == len(part), (len(lines), len(part), res.stderr)
        _explained.update(zip(part, (json.loads(x) for x in lines)))


def explain(path):
    explain_files([path])
    return _explained[str(path)]


def wanted(rec):
    """What Sisimai's record asks of us: hard, complaint, auto_reply or neither."""
    if rec["softbounce"] == 0:
        return "hard"
    if rec["reason"] == "feedback":
        return "complaint"
    if rec["reason"] == "vacation":
        return "auto_reply"
    return "neither"


def agrees(want, cls):
    if want in ("hard", "complaint", "auto_reply"):
        return cls == want
    return cls not in ("hard", "complaint")


NOTES = Path(__file__).resolve().parent / "bounce_corpus_notes.json"


def load_notes():
    """Records where Sisimai is clearly wrong, keyed by (file, recipient), each
    with the right decision or the right address and the reason."""
    return {(n["file"], n["recipient"]): n for n in json.loads(NOTES.read_text())}


def measure(corpus, notes=None):
    """Returns (stats dict, list of disagreement strings).  With notes, the
    records they name are judged by the note instead of by Sisimai."""
    notes = notes or {}
    total = found = agreed = 0
    other = other_suppressed = 0
    lines = []
    expected = [json.loads(x) for x in (corpus / "expected.jsonl").read_text().splitlines()]
    explain_files(corpus / "mail" / exp["file"] for exp in expected)
    for exp in expected:
        got = explain(corpus / "mail" / exp["file"])
        ours = {r["email"].lower(): r for r in got["recipients"]}
        if not exp["records"] and got["kind"] != "not_bounce" and exp["file"].startswith("not-"):
            lines.append(f"{exp['file']}: not a bounce, we say {got['kind']}")
        for rec in exp["records"]:
            total += 1
            want = wanted(rec)
            note = notes.get((exp["file"], rec["recipient"]))
            if note:
                want = note.get("decision", want)
                rec = dict(rec, recipient=note.get("replace", rec["recipient"]))
            mine = ours.get(rec["recipient"].lower())
            cls = mine["class"] if mine else None
            if mine:
                found += 1
            else:
                lines.append(f"{exp['file']}: recipient {rec['recipient']} not found "
                             f"(we have {sorted(ours)})")
            if want == "neither":
                other += 1
                if cls in ("hard", "complaint"):
                    other_suppressed += 1
            if agrees(want, cls):
                agreed += 1
            elif mine:
                lines.append(f"{exp['file']}: {rec['recipient']} sisimai {rec['reason']}"
                             f"/{rec['softbounce']} status={rec['status']} -> want {want}, "
                             f"we say {cls} ({mine['status']}: {(mine['diagnostic'] or '')[:120]})")
    stats = {
        "records": total,
        "recipients_found": found / total,
        "decisions_agreeing": agreed / total,
        "other_suppressed": other_suppressed / max(other, 1),
        "other": other,
    }
    return stats, lines


if __name__ == "__main__":
    c = corpus_dir()
    if c is None:
        sys.exit("corpus not found")
    raw, lines = measure(c)
    for n in lines:
        print(n)
    print("against Sisimai as it is:", json.dumps(raw, indent=2))
    print("with bounce_corpus_notes.json:", json.dumps(measure(c, load_notes())[0], indent=2))
