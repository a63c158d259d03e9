"End-to-end check of the dynamic market (serl.market.sim): a small synthetic day, deterministic, with an agent that moves the price."
import numpy as np
import pytest

from serl.core import SerlError
from serl.market.synthetic import generate_synthetic
from serl.market.sim import MarketSim, default_profiles, validate_profiles
from serl.market.facts import simulate_days, tracking_report


def test_market_end_to_end():
    panel = generate_synthetic("synthetic-nasdaq100", 2, 1, seed=3)
    rows = np.array([0, 1])
    def run(q):
        sim = MarketSim(panel, default_profiles(), n_agents=1, seed=5)
        sim.reset(rows, np.array([30, 30]))
        per_min = q * panel.volume[rows, 30:40].mean(1)
        out = [sim.step_minute(per_min[:, None] * (t < 10), np.ones((2, 1))) for t in range(15)]
        return sim, out
    sim, a = run(0.3)
    _, b = run(0.3)
    _, c = run(0.0)
    assert (sim.minute == 45).all()
    assert all((x[k] == y[k]).all() for x, y in zip(a, b) for k in x)          # deterministic by seed
    filled = sum(x["fill"] for x in a)[:, 0]
    asked = 0.3 * panel.volume[rows, 30:40].mean(1) * 10
    assert ((filled > 0.9 * asked - sim.unit) & (filled <= asked + 1e-6)).all()
    assert (np.mean([x["mid"] - y["mid"] for x, y in zip(a[:10], c[:10])], 0) > 0).all()   # buying raised the price (mean over the window)
    rep = tracking_report(panel, rows, simulate_days(panel, rows, seed=0))
    # per-minute volume correlation > 0.75: day 1 trades half its reference volume (the generator's level; the activity is
    # no longer normalised by the day's own mean, which looked ahead), so half the events and noisier minutes (0.80 at seed 0)
    assert rep.vwap_err_bps.abs().max() < 10 and rep.volume_corr.min() > 0.75
    with pytest.raises(SerlError, match="profile 0.*p_market"):
        validate_profiles([dict(default_profiles()[0], p_market=2.0)])


def test_cost_calibration_on_simulator():
    "The static env's cost model fitted on isolated child orders: positive half-spread and impact, costs grow with size."
    from serl.market.facts import calibrate_cost_model
    panel = generate_synthetic("synthetic-nasdaq100", 2, 1, seed=3)
    cal = calibrate_cost_model(panel, [0, 1], participations=(0.02, 0.3), minutes=(60, 120, 240), seeds=(0,))
    assert cal["half_spread_bps"] > 0 and cal["impact_bps"] > 0 and cal["n"] >= 6
    assert cal["table"].cost_bps.iloc[1] > cal["table"].cost_bps.iloc[0]
    with pytest.raises(SerlError, match="calibrate_cost_model"):
        calibrate_cost_model(panel, [0], participations=(1e-9,), minutes=(60,), seeds=(0,))
