#!/usr/bin/python3
"""Fills a tonghop .xlsx template the way a person would, with openpyxl.

usage: xlsx_fill.py TEMPLATE.xlsx OUT.xlsx VALUES.json

VALUES.json:
  {"sheet": "PL1",                      the data sheet
   "epoch1904": false,                  save with the 1904 date system
   "as_of": "2021-06-30",               the "Ngày báo cáo:" cell, when given
   "rows": [{"unit": "00001",           multi-unit templates: that unit's rows
             "cells": {"col_id": {"int": 5} | {"num": "12.5"} | {"date": "2021-04-05"}
                                 | {"bool": true} | {"str": "..."}}}]}

Columns are found by the template's hidden row of column ids; the rows to
fill are the ones under the header (for a unit: the rows whose unit cell
holds its code, in order).  Used by tests/test_template.c.
"""
import datetime
import json
import sys
from decimal import Decimal

import openpyxl
from openpyxl.utils.datetime import CALENDAR_MAC_1904


def cell_value(v):
    if "int" in v:
        return int(v["int"])
    if "num" in v:
        return float(Decimal(v["num"]))
    if "date" in v:
        return datetime.date.fromisoformat(v["date"])
    if "bool" in v:
        return bool(v["bool"])
    return v["str"]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    template, out, values = sys.argv[1:]
    with open(values, encoding="utf-8") as f:
        spec = json.load(f)
    wb = openpyxl.load_workbook(template)
    if spec.get("epoch1904"):
        wb.epoch = CALENDAR_MAC_1904
    ws = wb[spec["sheet"]]
    ids_row, cols = None, {}
    for row in ws.iter_rows(min_row=1, max_row=40):
        names = {c.value: c.column for c in row if isinstance(c.value, str)}
        if "stt" in names or "unit" in names or any(
                k in names for r in spec["rows"] for k in r["cells"]):
            ids_row, cols = row[0].row, names
            break
    if ids_row is None:
        sys.exit("xlsx_fill: no row of column ids in " + template)
    first = ids_row + 2
    if spec.get("as_of"):
        for row in ws.iter_rows(min_row=1, max_row=ids_row):
            for c in row:
                if c.value == "Ngày báo cáo:":
                    ws.cell(row=c.row, column=c.column + 1).value = \
                        datetime.date.fromisoformat(spec["as_of"])
    used = {}
    plain = first
    for r in spec["rows"]:
        if "unit" in r:
            k = used.get(r["unit"], 0)
            rows = [n for n in range(first, ws.max_row + 1)
                    if ws.cell(row=n, column=cols["unit"]).value == r["unit"]]
            if k >= len(rows):
                sys.exit("xlsx_fill: no row %d for unit %s" % (k + 1, r["unit"]))
            n = rows[k]
            used[r["unit"]] = k + 1
        else:
            n = plain
            plain += 1
        for cid, v in r["cells"].items():
            ws.cell(row=n, column=cols[cid]).value = cell_value(v)
    wb.save(out)


if __name__ == "__main__":
    main()
