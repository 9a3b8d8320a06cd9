"""Worker count from the container's CPU quota (cgroup v2 and v1), never more than the affinity mask allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import cpus


def _v2(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(text + "\n")
    return root


def _v1(root: Path, quota: int, period: int) -> Path:
    (root / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


@pytest.fixture
def many_cpus(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 96)  # a large GPU node's host CPUs
    return 96


@pytest.mark.parametrize(("text", "expected"), [("800000 100000", 8), ("150000 100000", 2), ("50000 100000", 1),
                                               ("max 100000", 96)])
def test_cgroup_v2_quota_bounds_the_cpus(tmp_path, many_cpus, text, expected):
    assert cpus.available_cpus(_v2(tmp_path / "cg", text)) == expected


@pytest.mark.parametrize(("quota", "period", "expected"), [(400000, 100000, 4), (-1, 100000, 96)])
def test_cgroup_v1_quota_bounds_the_cpus(tmp_path, many_cpus, quota, period, expected):
    assert cpus.available_cpus(_v1(tmp_path / "cg", quota, period)) == expected


def test_no_cgroup_filesystem_means_the_affinity_mask(tmp_path, many_cpus):
    assert cpus.quota_cpus(tmp_path / "missing") is None
    assert cpus.available_cpus(tmp_path / "missing") == 96


def test_a_quota_above_the_mask_does_not_raise_the_count(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 2)
    assert cpus.available_cpus(_v2(tmp_path / "cg", "3200000 100000")) == 2


def test_workers_default_follows_the_quota(tmp_path, many_cpus, monkeypatch, make_settings):
    root = _v2(tmp_path / "cg", "800000 100000")
    monkeypatch.setattr(cpus, "CGROUP_ROOT", root)
    monkeypatch.setattr(cpus.available_cpus, "__defaults__", (root,))
    assert make_settings().workers == 8
    assert make_settings(workers=3).workers == 3
