"""The simulated market against real SPY minutes, full size (the acceptance checks of the `market` experiment,
nbs/experiments/market.ipynb, which writes `reports/market/`): day tracking, stylised facts, the square-root impact law,
and the static env's default cost model against a fresh calibration on the simulated market. About two minutes on 2 cores."""
import numpy as np
import pytest

from serl.core import DataConfig, EnvConfig, COST_MODELS
from serl.market.data import load_dataset
from serl.market.facts import (simulate_days, stylised_facts, tracking_report, metaorder_impact, impact_exponent,
                               calibrate_cost_model)


@pytest.fixture(scope="module")
def spy():
    return load_dataset(DataConfig("spy")).panel


def test_no_agent_days_track_history_with_stylised_facts(spy):
    rows = np.arange(10, len(spy), 30)                               # 25 days spread over 2017-2019
    days = simulate_days(spy, rows, seed=0)
    rep = tracking_report(spy, rows, days)
    assert rep.vwap_err_bps.abs().mean() < 5, rep.vwap_err_bps.describe()
    n = days["n_bars"]
    share = lambda v: (v / v.sum(1, keepdims=True)).mean(0)
    assert np.corrcoef(share(days["volume"]), share(spy.volume[rows, :n]))[0, 1] > 0.8      # intraday volume profile
    f = stylised_facts(days["mid"])
    assert f["excess_kurtosis"] > 0 and f["abs_acf1"] > 0, f                                # heavy tails, volatility clustering
    assert abs(f["acf1"]) < max(f["band"], 0.05), f                                         # no lag-1 autocorrelation


def test_square_root_impact(spy):
    rows = np.arange(5, len(spy), 10)                                # 74 days x 12 seeds: ~900 paired metaorders per size
    imp = metaorder_impact(spy, rows, [0.01, 0.02, 0.05, 0.1, 0.2, 0.4], seeds=tuple(range(12)))
    assert imp.n.min() >= 800 and imp.impact_bps.is_monotonic_increasing, imp
    assert 0.4 <= impact_exponent(imp) <= 0.7, imp                  # the empirical square-root law's range


def test_static_cost_default_is_the_simulated_markets():
    "EnvConfig's h and eta (serl.core.COST_MODELS['simulated']) lie inside the 95% intervals of the calibration they document."
    train = load_dataset(DataConfig("spy")).splits["train"]
    cal = calibrate_cost_model(train, np.arange(5, len(train), 10), seeds=(0, 1))     # the market experiment's calibration
    assert cal["n"] > 2500 and cal["market_days"] == 104, cal
    env = EnvConfig()
    assert dict(half_spread_bps=env.half_spread_bps, impact_bps=env.impact_bps) == COST_MODELS["simulated"]
    for k in ("half_spread_bps", "impact_bps"):
        se = cal[k.replace("_bps", "_se_bps")]
        assert abs(getattr(env, k) - cal[k]) <= 1.96 * se, (k, getattr(env, k), cal[k], se)
