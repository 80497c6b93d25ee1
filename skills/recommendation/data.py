"""Reading a retailer's exports: interactions (orders) and an optional catalogue.

The defaults fit the UCI Online Retail layout (InvoiceNo, StockCode, Description,
Quantity, InvoiceDate, UnitPrice, CustomerID); every column name can be changed.
Cleaning drops what a retailer's data needs dropped, and counts each kind:

- cancellations (an order number starting with "C"),
- returns and corrections (quantity of zero or less),
- rows without a customer,
- rows with a price of zero or less (adjustments, free samples),
- non-product codes: codes without a digit (POST, DOT, M, D, BANK CHARGES, ...)
  and the ``EXCLUDE_CODES`` pattern (carriage, gift vouchers),
- exact duplicate rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RecommendDataError", "Columns", "CatalogColumns", "load_interactions", "load_catalog", "derive_catalog",
           "EXCLUDE_CODES"]

#: Codes that are services, not products, although they contain a digit.
EXCLUDE_CODES = r"^(?:C2|DCGS.*|gift_.*|AMAZONFEE|BANK CHARGES)$"


class RecommendDataError(ValueError):
    """An export that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Columns:
    user: str = "CustomerID"
    item: str = "StockCode"
    time: str = "InvoiceDate"
    quantity: str = "Quantity"
    price: str = "UnitPrice"
    order: str = "InvoiceNo"
    title: str = "Description"


@dataclass(frozen=True)
class CatalogColumns:
    item: str = "StockCode"
    title: str = "Description"
    price: str = "UnitPrice"
    category: str = "Category"


@dataclass
class Cleaned:
    #: Columns user, item, time, quantity, price, order, title (strings for ids).
    frame: Any
    report: dict[str, int] = field(default_factory=dict)
    source: str = ""  # the file it was read from


def _read_csv(path: Path, what: str):  # noqa: ANN202
    import pandas as pd

    if not path.is_file():
        raise RecommendDataError(f"{what} {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=True, encoding_errors="replace")
    except pd.errors.EmptyDataError:
        raise RecommendDataError(f"{what} {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise RecommendDataError(f"{what} {path} is not a readable CSV file: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise RecommendDataError(f"{what} {path} has no rows")
    return frame


def load_interactions(path: Path, columns: Columns = Columns(), exclude_codes: str = EXCLUDE_CODES) -> Cleaned:
    """The cleaned interactions of an export, with what was dropped and why."""
    import pandas as pd

    raw = _read_csv(path, "interactions file")
    needed = {"user": columns.user, "item": columns.item, "time": columns.time, "quantity": columns.quantity}
    optional = {"price": columns.price, "order": columns.order, "title": columns.title}
    missing = [f"{role} column {name!r}" for role, name in needed.items() if name not in raw.columns]
    if missing:
        raise RecommendDataError(f"the interactions file has no {', '.join(missing)}; its columns: "
                                 f"{', '.join(map(str, raw.columns))} (set them with --user-col, --item-col, ...)")
    frame = pd.DataFrame({role: raw[name] for role, name in needed.items()})
    for role, name in optional.items():
        frame[role] = raw[name] if name in raw.columns else None
    report = {"rows": int(len(frame))}
    frame["quantity"] = pd.to_numeric(frame["quantity"], errors="coerce")
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce") if frame["price"].notna().any() else 1.0
    frame["time"] = pd.to_datetime(frame["time"], errors="coerce")
    if frame["time"].isna().all():
        raise RecommendDataError(f"the time column {columns.time!r} holds no readable dates")
    if frame["quantity"].isna().all():
        raise RecommendDataError(f"the quantity column {columns.quantity!r} holds no numbers")

    def drop(mask, reason: str) -> None:  # noqa: ANN001
        nonlocal frame
        report[reason] = int(mask.sum())
        frame = frame[~mask]

    order = frame["order"].fillna("").astype(str)
    drop(order.str.upper().str.startswith("C"), "cancellations")
    drop(frame["quantity"].isna() | (frame["quantity"] <= 0), "returns_or_zero_quantity")
    drop(frame["user"].isna() | (frame["user"].astype(str).str.strip() == ""), "missing_user")
    drop(frame["time"].isna(), "unreadable_time")
    drop(frame["price"].isna() | (frame["price"] <= 0), "no_price")
    codes = frame["item"].fillna("").astype(str).str.strip()
    drop(~codes.str.contains(r"\d") | codes.str.match(exclude_codes, flags=re.I), "non_product_codes")
    before = len(frame)
    frame = frame.drop_duplicates()
    report["duplicates"] = int(before - len(frame))
    frame = frame.assign(user=frame["user"].astype(str).str.replace(r"\.0$", "", regex=True).str.strip(),
                         item=frame["item"].astype(str).str.strip())
    if frame["order"].isna().all():
        frame["order"] = frame["user"] + "@" + frame["time"].astype(str)
    report["kept"] = int(len(frame))
    if frame.empty:
        raise RecommendDataError("no purchases are left after cleaning: " +
                                 ", ".join(f"{k} {v}" for k, v in report.items() if k not in ("rows", "kept") and v))
    report["users"] = int(frame["user"].nunique())
    report["items"] = int(frame["item"].nunique())
    return Cleaned(frame.reset_index(drop=True), report, str(path))


def derive_catalog(frame) -> Any:  # noqa: ANN001
    """A catalogue from the interactions: each item's most common title and its median price."""
    import pandas as pd

    titles = (frame.dropna(subset=["title"]).groupby("item")["title"]
              .agg(lambda s: s.astype(str).str.strip().mode().iat[0] if not s.empty else ""))
    prices = frame.groupby("item")["price"].median()
    catalog = pd.DataFrame({"price": prices})
    catalog["title"] = titles.reindex(catalog.index).fillna(catalog.index.to_series())
    catalog["category"] = None
    return catalog


def load_catalog(path: Path, columns: CatalogColumns = CatalogColumns()) -> Any:
    """A catalogue file: item id and title required; price and category optional."""
    import pandas as pd

    raw = _read_csv(path, "catalogue")
    for role, name in (("item", columns.item), ("title", columns.title)):
        if name not in raw.columns:
            raise RecommendDataError(f"the catalogue has no {role} column {name!r}; its columns: "
                                     f"{', '.join(map(str, raw.columns))}")
    catalog = pd.DataFrame({
        "title": raw[columns.title].fillna("").astype(str).str.strip().values,
        "price": pd.to_numeric(raw[columns.price], errors="coerce").values if columns.price in raw.columns else None,
        "category": raw[columns.category].values if columns.category in raw.columns else None,
    }, index=raw[columns.item].astype(str).str.strip().values)
    catalog = catalog[~catalog.index.duplicated(keep="first")]
    return catalog
