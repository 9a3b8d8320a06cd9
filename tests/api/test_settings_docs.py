"""`.env.example` documents every setting, and invalid settings stop `serve` with one line and exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def env_names(field_name: str) -> list[str]:
    alias = Settings.model_fields[field_name].validation_alias
    if alias is None:
        return [field_name.upper()]
    return [a for a in alias.choices if isinstance(a, str) and a.isupper()]


def test_env_example_lists_every_setting_with_a_default_line():
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, flags=re.M))
    missing = [name for name in Settings.model_fields if not set(env_names(name)) & documented]
    assert missing == [], f".env.example lacks {missing}"


def test_serve_with_an_invalid_setting_prints_one_line_and_exits_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PORT": "99999", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "PORT" in lines[0], proc.stderr
