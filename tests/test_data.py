"End-to-end paths of serl.market.data: a user CSV and a small synthetic CSI universe through load_dataset."
import numpy as np
import pandas as pd

from serl.core import DataConfig
from serl.market.bars import quality_accounting, panel_to_bars
from serl.market.data import load_dataset, make_orders, market_vwap, market_twap


def _write_csv(path):
    rows = []
    for d in pd.bdate_range("2024-03-01", periods=10):
        for inst, base in [("AAA", 20.0), ("BBB", 75.0)]:
            for k in range(120):
                p = base + 0.01*k
                rows.append([inst, d + pd.Timedelta(hours=9, minutes=30 + k), p, p + 0.03, p - 0.03, p + 0.01, 500 + k])
    df = pd.DataFrame(rows, columns=["instrument", "datetime", "open", "high", "low", "close", "volume"])
    df.loc[5, "high"] = df.loc[5, "low"] - 0.1          # repaired
    df = df.drop(index=[50])                             # one missing minute -> filled
    df.to_csv(path, index=False)
    return df


def test_load_user_csv(tmp_path):
    raw = _write_csv(tmp_path/"bars.csv")
    cfg = DataConfig(dataset=f"csv:{tmp_path/'bars.csv'}", window_minutes=30)
    ds = load_dataset(cfg)
    p = ds.panel
    assert len(p) == 20 and (p.n_bars == 120).all() and not p.synthetic and p.spread_bps is None
    acc = quality_accounting(ds.quality)
    assert acc["filled"] == 1 and acc["dropped"] == 0 and acc["rejected"] == 0
    assert len(raw) + acc["filled"] == len(panel_to_bars(p))
    assert (p.high >= np.maximum(p.open, p.close)).all() and (p.low <= np.minimum(p.open, p.close)).all()
    tr, va, te = ds.splits["train"], ds.splits["valid"], ds.splits["test"]
    assert tr.date.max() < va.date.min() and va.date.max() < te.date.min()
    assert len(tr) + len(va) + len(te) == len(p)
    o = make_orders(tr, cfg, seed=0)
    assert o.length == 30 and (o.start + o.length <= tr.n_bars[o.row]).all() and (o.quantity >= 1).all()
    vw, tw = market_vwap(tr, o), market_twap(tr, o)
    lo = np.array([tr.low[r, s:s + 30].min() for r, s in zip(o.row, o.start)])
    hi = np.array([tr.high[r, s:s + 30].max() for r, s in zip(o.row, o.start)])
    assert ((vw >= lo) & (vw <= hi) & (tw >= lo) & (tw <= hi)).all()


def test_load_synthetic_csi():
    cfg = DataConfig(dataset="synthetic-csi100", n_instruments=4, n_days=20)
    a, b = load_dataset(cfg, seed=3), load_dataset(cfg, seed=3)
    p = a.panel
    assert p.synthetic and len(p) == 80 and (p.n_bars == 240).all() and (p.lot_size == 100).all()
    assert np.array_equal(p.close, b.panel.close) and np.array_equal(p.spread_bps, b.panel.spread_bps)
    for inst in np.unique(p.instrument):
        rows = np.flatnonzero(p.instrument == inst)
        prev = p.close[rows[:-1], -1][:, None]
        assert (p.high[rows[1:]] <= prev*1.1 + 1e-9).all() and (p.low[rows[1:]] >= prev*0.9 - 1e-9).all()
    o = make_orders(a.splits["test"], cfg, seed=1)
    assert (o.quantity % 100 == 0).all() and (o.quantity >= 100).all()
    assert sum(len(s) for s in a.splits.values()) == len(p)
