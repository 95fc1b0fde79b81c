#!/usr/bin/env python3
"""Kept for old instructions: the variants are now all derived by
`rules/make-variants.py` (clear-ids, no-groups, clear-ids-no-groups).

Run after editing a default rule file:  python3 rules/make-variants.py
"""
import pathlib
import runpy

runpy.run_path(str(pathlib.Path(__file__).with_name("make-variants.py")), run_name="__main__")
