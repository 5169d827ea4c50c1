"""Options shared by several subcommands."""

from __future__ import annotations

import argparse

import torch

from cvgr.devices import resolve_device


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N or mps (default: cuda when present, else cpu)")


def pick_device(name: str | None) -> torch.device:
    """The device named by --device (None: the default), checked: see cvgr.devices."""
    return resolve_device(name)
