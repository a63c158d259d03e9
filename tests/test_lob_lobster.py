"Replay of the LOBSTER AAPL sample through serl.market.lob (serl.market.lobster): our 10-level book must equal LOBSTER's after every replayed message."
import pytest

from serl.market.lobster import lobster_dir, replay_lobster


def test_lobster_replay_matches_every_book():
    folder = lobster_dir()
    if folder is None:
        pytest.skip("LOBSTER sample not found: set SERL_LOBSTER_DIR or put it at <repo root>/../shared/data/lobster")
    rep = replay_lobster(folder)
    match, n = rep["match"], len(rep["match"])
    assert n == 998, f"expected 998 replayed messages, got {n}"
    bad = [int(k) for k, ok in enumerate(match) if not ok]
    assert not bad, f"{len(bad)}/{n} books differ, first after replayed message {bad[:5]}"
    assert rep["stats"]["bad_fills"] == 0, rep["stats"]
