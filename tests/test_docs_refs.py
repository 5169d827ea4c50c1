"""User-facing text points only to files in the repository (docs/method.md, not DESIGN.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cvgr.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_no_text_cites_a_file_outside_the_repo():
    files = [*ROOT.glob("src/cvgr/**/*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md"]
    assert not [f for f in files if "DESIGN.md" in f.read_text()]


def test_train_help_cites_method_md_and_prints_each_recipe(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "docs/method.md" in text and "DESIGN" not in text
    assert "cifar10: lr 0.01, momentum 0.875, weight decay 0.0001, batch 128, 80 epochs" in text
    assert (ROOT / "docs" / "method.md").is_file()


def test_doc_links_resolve():
    for page in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([\w./-]+\.md)\)", page.read_text()):
            assert (page.parent / target).is_file(), (page.name, target)
