"""Reference organisation of EVN's five power corporations.

Pure data, loaded idempotently by the ``load_organisation`` service: the corporations, their
power companies (``Công ty Điện lực``) and the district-level units (``Điện lực``) that own the
customers. Names follow the administrative geography in force before the July 2025 reform
(provinces and districts as they appeared in addresses), plus a few historic merges:

* EVNHCMC: the units for Quận 2, Quận 9 and Quận Thủ Đức were merged into a single unit for
  TP Thủ Đức when that city was created on 2021-01-01.
* EVNCPC: the 2025 reorganisation merged Điện lực Sông Hinh and Điện lực Sơn Hòa (Phú Yên),
  Điện lực Tuyên Hóa and Điện lực Minh Hóa (Quảng Bình), Điện lực Kon Plông and Điện lực Kon Rẫy
  (Kon Tum) with effect from 2025-07-01.

A merged unit covers several former districts; its district field holds the district of its
seat, and its ward list only that district's wards, so that demo addresses stay consistent. The ward lists
are data (``data/wards.json``); the demo's street names live beside the demo loader
(``customers/demo_data/streets.json``).

Run this module directly to check the invariants: ``python3 crm/reference_data.py``.
"""

import datetime as dt
import functools
import json
import re
import unicodedata
from pathlib import Path

_SINCE = dt.date(2010, 1, 1)
_THU_DUC_CITY_FORMED = dt.date(2021, 1, 1)
_UNTIL_THU_DUC_CITY = dt.date(2020, 12, 31)
_REFORM_2025 = dt.date(2025, 7, 1)
_UNTIL_REFORM_2025 = dt.date(2025, 6, 30)

# (code, Vietnamese name, two-letter prefix of its unit and customer codes)
CORPORATIONS: list[tuple[str, str, str]] = [
    ("EVNNPC", "Tổng công ty Điện lực miền Bắc", "PA"),
    ("EVNSPC", "Tổng công ty Điện lực miền Nam", "PB"),
    ("EVNCPC", "Tổng công ty Điện lực miền Trung", "PC"),
    ("EVNHANOI", "Tổng công ty Điện lực TP Hà Nội", "PD"),
    ("EVNHCMC", "Tổng công ty Điện lực TP Hồ Chí Minh", "PE"),
]

# (corporation code, company code, Vietnamese name, province/city)
COMPANIES: list[tuple[str, str, str, str]] = [
    # EVNNPC
    ("EVNNPC", "PA01", "Công ty Điện lực Hải Phòng", "TP Hải Phòng"),
    ("EVNNPC", "PA02", "Công ty Điện lực Quảng Ninh", "Quảng Ninh"),
    ("EVNNPC", "PA03", "Công ty Điện lực Bắc Ninh", "Bắc Ninh"),
    # EVNSPC
    ("EVNSPC", "PB01", "Công ty Điện lực Cần Thơ", "TP Cần Thơ"),
    ("EVNSPC", "PB02", "Công ty Điện lực Đồng Nai", "Đồng Nai"),
    ("EVNSPC", "PB03", "Công ty Điện lực Bình Dương", "Bình Dương"),
    # EVNCPC: the 13 provincial power companies
    ("EVNCPC", "PC01", "Công ty Điện lực Quảng Bình", "Quảng Bình"),
    ("EVNCPC", "PC02", "Công ty Điện lực Quảng Trị", "Quảng Trị"),
    ("EVNCPC", "PC03", "Công ty Điện lực Thừa Thiên Huế", "Thừa Thiên Huế"),
    ("EVNCPC", "PC04", "Công ty Điện lực Đà Nẵng", "TP Đà Nẵng"),
    ("EVNCPC", "PC05", "Công ty Điện lực Quảng Nam", "Quảng Nam"),
    ("EVNCPC", "PC06", "Công ty Điện lực Quảng Ngãi", "Quảng Ngãi"),
    ("EVNCPC", "PC07", "Công ty Điện lực Bình Định", "Bình Định"),
    ("EVNCPC", "PC08", "Công ty Điện lực Phú Yên", "Phú Yên"),
    ("EVNCPC", "PC09", "Công ty Điện lực Khánh Hòa", "Khánh Hòa"),
    ("EVNCPC", "PC10", "Công ty Điện lực Gia Lai", "Gia Lai"),
    ("EVNCPC", "PC11", "Công ty Điện lực Kon Tum", "Kon Tum"),
    ("EVNCPC", "PC12", "Công ty Điện lực Đắk Lắk", "Đắk Lắk"),
    ("EVNCPC", "PC13", "Công ty Điện lực Đắk Nông", "Đắk Nông"),
    # EVNHANOI: district power companies
    ("EVNHANOI", "PD01", "Công ty Điện lực Hoàn Kiếm", "TP Hà Nội"),
    ("EVNHANOI", "PD02", "Công ty Điện lực Ba Đình", "TP Hà Nội"),
    ("EVNHANOI", "PD03", "Công ty Điện lực Đống Đa", "TP Hà Nội"),
    ("EVNHANOI", "PD04", "Công ty Điện lực Long Biên", "TP Hà Nội"),
    # EVNHCMC: district power companies
    ("EVNHCMC", "PE01", "Công ty Điện lực Sài Gòn", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE02", "Công ty Điện lực Chợ Lớn", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE03", "Công ty Điện lực Gia Định", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE04", "Công ty Điện lực Tân Thuận", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE05", "Công ty Điện lực Thủ Đức", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE06", "Công ty Điện lực Phú Thọ", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE07", "Công ty Điện lực Bình Phú", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE08", "Công ty Điện lực Tân Bình", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE09", "Công ty Điện lực An Phú Đông", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE10", "Công ty Điện lực Bình Chánh", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE11", "Công ty Điện lực Hóc Môn", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE12", "Công ty Điện lực Củ Chi", "TP Hồ Chí Minh"),
    ("EVNHCMC", "PE13", "Công ty Điện lực Duyên Hải", "TP Hồ Chí Minh"),
]

# (company code, unit code, Vietnamese name, district name as it appears in addresses,
#  valid_from, valid_to (None = still active), successor unit code (None unless merged))
UNITS: list[tuple[str, str, str, str, dt.date, dt.date | None, str | None]] = [
    # --- EVNNPC ---------------------------------------------------------------------------------
    ("PA01", "PA0101", "Điện lực Hồng Bàng", "Quận Hồng Bàng", _SINCE, None, None),
    ("PA01", "PA0102", "Điện lực Lê Chân", "Quận Lê Chân", _SINCE, None, None),
    ("PA01", "PA0103", "Điện lực Ngô Quyền", "Quận Ngô Quyền", _SINCE, None, None),
    ("PA01", "PA0104", "Điện lực Kiến An", "Quận Kiến An", _SINCE, None, None),
    ("PA02", "PA0201", "Điện lực Hạ Long", "TP Hạ Long", _SINCE, None, None),
    ("PA02", "PA0202", "Điện lực Cẩm Phả", "TP Cẩm Phả", _SINCE, None, None),
    ("PA02", "PA0203", "Điện lực Uông Bí", "TP Uông Bí", _SINCE, None, None),
    ("PA02", "PA0204", "Điện lực Móng Cái", "TP Móng Cái", _SINCE, None, None),
    ("PA03", "PA0301", "Điện lực TP Bắc Ninh", "TP Bắc Ninh", _SINCE, None, None),
    ("PA03", "PA0302", "Điện lực Từ Sơn", "TP Từ Sơn", _SINCE, None, None),
    ("PA03", "PA0303", "Điện lực Yên Phong", "Huyện Yên Phong", _SINCE, None, None),
    # --- EVNSPC ---------------------------------------------------------------------------------
    ("PB01", "PB0101", "Điện lực Ninh Kiều", "Quận Ninh Kiều", _SINCE, None, None),
    ("PB01", "PB0102", "Điện lực Bình Thủy", "Quận Bình Thủy", _SINCE, None, None),
    ("PB01", "PB0103", "Điện lực Cái Răng", "Quận Cái Răng", _SINCE, None, None),
    ("PB01", "PB0104", "Điện lực Ô Môn", "Quận Ô Môn", _SINCE, None, None),
    ("PB02", "PB0201", "Điện lực Biên Hòa", "TP Biên Hòa", _SINCE, None, None),
    ("PB02", "PB0202", "Điện lực Long Khánh", "TP Long Khánh", _SINCE, None, None),
    ("PB02", "PB0203", "Điện lực Nhơn Trạch", "Huyện Nhơn Trạch", _SINCE, None, None),
    ("PB02", "PB0204", "Điện lực Long Thành", "Huyện Long Thành", _SINCE, None, None),
    ("PB03", "PB0301", "Điện lực Thủ Dầu Một", "TP Thủ Dầu Một", _SINCE, None, None),
    ("PB03", "PB0302", "Điện lực Dĩ An", "TP Dĩ An", _SINCE, None, None),
    ("PB03", "PB0303", "Điện lực Thuận An", "TP Thuận An", _SINCE, None, None),
    # --- EVNCPC ---------------------------------------------------------------------------------
    # Quảng Bình (Tuyên Hóa and Minh Hóa merged in the 2025 reorganisation)
    ("PC01", "PC0101", "Điện lực Đồng Hới", "TP Đồng Hới", _SINCE, None, None),
    ("PC01", "PC0102", "Điện lực Ba Đồn", "Thị xã Ba Đồn", _SINCE, None, None),
    ("PC01", "PC0103", "Điện lực Bố Trạch", "Huyện Bố Trạch", _SINCE, None, None),
    ("PC01", "PC0104", "Điện lực Quảng Trạch", "Huyện Quảng Trạch", _SINCE, None, None),
    ("PC01", "PC0105", "Điện lực Quảng Ninh", "Huyện Quảng Ninh", _SINCE, None, None),
    ("PC01", "PC0106", "Điện lực Lệ Thủy", "Huyện Lệ Thủy", _SINCE, None, None),
    ("PC01", "PC0107", "Điện lực Tuyên Hóa", "Huyện Tuyên Hóa", _SINCE, _UNTIL_REFORM_2025, "PC0109"),
    ("PC01", "PC0108", "Điện lực Minh Hóa", "Huyện Minh Hóa", _SINCE, _UNTIL_REFORM_2025, "PC0109"),
    ("PC01", "PC0109", "Điện lực Tuyên Hóa - Minh Hóa", "Huyện Tuyên Hóa", _REFORM_2025, None, None),
    # Quảng Trị
    ("PC02", "PC0201", "Điện lực Đông Hà", "TP Đông Hà", _SINCE, None, None),
    ("PC02", "PC0202", "Điện lực Vĩnh Linh", "Huyện Vĩnh Linh", _SINCE, None, None),
    ("PC02", "PC0203", "Điện lực Gio Linh", "Huyện Gio Linh", _SINCE, None, None),
    ("PC02", "PC0204", "Điện lực Triệu Phong", "Huyện Triệu Phong", _SINCE, None, None),
    ("PC02", "PC0205", "Điện lực Hải Lăng", "Huyện Hải Lăng", _SINCE, None, None),
    ("PC02", "PC0206", "Điện lực Hướng Hóa", "Huyện Hướng Hóa", _SINCE, None, None),
    # Thừa Thiên Huế
    ("PC03", "PC0301", "Điện lực Bắc Sông Hương", "TP Huế", _SINCE, None, None),
    ("PC03", "PC0302", "Điện lực Nam Sông Hương", "TP Huế", _SINCE, None, None),
    ("PC03", "PC0303", "Điện lực Hương Thủy", "Thị xã Hương Thủy", _SINCE, None, None),
    ("PC03", "PC0304", "Điện lực Hương Trà", "Thị xã Hương Trà", _SINCE, None, None),
    ("PC03", "PC0305", "Điện lực Phú Vang", "Huyện Phú Vang", _SINCE, None, None),
    ("PC03", "PC0306", "Điện lực Phong Điền", "Huyện Phong Điền", _SINCE, None, None),
    ("PC03", "PC0307", "Điện lực Phú Lộc", "Huyện Phú Lộc", _SINCE, None, None),
    # Đà Nẵng
    ("PC04", "PC0401", "Điện lực Hải Châu", "Quận Hải Châu", _SINCE, None, None),
    ("PC04", "PC0402", "Điện lực Thanh Khê", "Quận Thanh Khê", _SINCE, None, None),
    ("PC04", "PC0403", "Điện lực Sơn Trà", "Quận Sơn Trà", _SINCE, None, None),
    ("PC04", "PC0404", "Điện lực Cẩm Lệ", "Quận Cẩm Lệ", _SINCE, None, None),
    ("PC04", "PC0405", "Điện lực Hòa Vang", "Huyện Hòa Vang", _SINCE, None, None),
    # Quảng Nam
    ("PC05", "PC0501", "Điện lực Tam Kỳ", "TP Tam Kỳ", _SINCE, None, None),
    ("PC05", "PC0502", "Điện lực Hội An", "TP Hội An", _SINCE, None, None),
    ("PC05", "PC0503", "Điện lực Điện Bàn", "Thị xã Điện Bàn", _SINCE, None, None),
    ("PC05", "PC0504", "Điện lực Duy Xuyên", "Huyện Duy Xuyên", _SINCE, None, None),
    ("PC05", "PC0505", "Điện lực Thăng Bình", "Huyện Thăng Bình", _SINCE, None, None),
    ("PC05", "PC0506", "Điện lực Núi Thành", "Huyện Núi Thành", _SINCE, None, None),
    # Quảng Ngãi
    ("PC06", "PC0601", "Điện lực TP Quảng Ngãi", "TP Quảng Ngãi", _SINCE, None, None),
    ("PC06", "PC0602", "Điện lực Bình Sơn", "Huyện Bình Sơn", _SINCE, None, None),
    ("PC06", "PC0603", "Điện lực Sơn Tịnh", "Huyện Sơn Tịnh", _SINCE, None, None),
    ("PC06", "PC0604", "Điện lực Tư Nghĩa", "Huyện Tư Nghĩa", _SINCE, None, None),
    ("PC06", "PC0605", "Điện lực Mộ Đức", "Huyện Mộ Đức", _SINCE, None, None),
    ("PC06", "PC0606", "Điện lực Đức Phổ", "Thị xã Đức Phổ", _SINCE, None, None),
    # Bình Định
    ("PC07", "PC0701", "Điện lực Quy Nhơn", "TP Quy Nhơn", _SINCE, None, None),
    ("PC07", "PC0702", "Điện lực An Nhơn", "Thị xã An Nhơn", _SINCE, None, None),
    ("PC07", "PC0703", "Điện lực Hoài Nhơn", "Thị xã Hoài Nhơn", _SINCE, None, None),
    ("PC07", "PC0704", "Điện lực Phù Cát", "Huyện Phù Cát", _SINCE, None, None),
    ("PC07", "PC0705", "Điện lực Phù Mỹ", "Huyện Phù Mỹ", _SINCE, None, None),
    ("PC07", "PC0706", "Điện lực Tây Sơn", "Huyện Tây Sơn", _SINCE, None, None),
    # Phú Yên (Sông Hinh and Sơn Hòa merged in the 2025 reorganisation)
    ("PC08", "PC0801", "Điện lực Tuy Hòa", "TP Tuy Hòa", _SINCE, None, None),
    ("PC08", "PC0802", "Điện lực Sông Cầu", "Thị xã Sông Cầu", _SINCE, None, None),
    ("PC08", "PC0803", "Điện lực Tuy An", "Huyện Tuy An", _SINCE, None, None),
    ("PC08", "PC0804", "Điện lực Đồng Xuân", "Huyện Đồng Xuân", _SINCE, None, None),
    ("PC08", "PC0805", "Điện lực Đông Hòa", "Thị xã Đông Hòa", _SINCE, None, None),
    ("PC08", "PC0806", "Điện lực Tây Hòa", "Huyện Tây Hòa", _SINCE, None, None),
    ("PC08", "PC0807", "Điện lực Sông Hinh", "Huyện Sông Hinh", _SINCE, _UNTIL_REFORM_2025, "PC0809"),
    ("PC08", "PC0808", "Điện lực Sơn Hòa", "Huyện Sơn Hòa", _SINCE, _UNTIL_REFORM_2025, "PC0809"),
    ("PC08", "PC0809", "Điện lực Sông Hinh - Sơn Hòa", "Huyện Sông Hinh", _REFORM_2025, None, None),
    # Khánh Hòa
    ("PC09", "PC0901", "Điện lực Nha Trang", "TP Nha Trang", _SINCE, None, None),
    ("PC09", "PC0902", "Điện lực Cam Ranh", "TP Cam Ranh", _SINCE, None, None),
    ("PC09", "PC0903", "Điện lực Ninh Hòa", "Thị xã Ninh Hòa", _SINCE, None, None),
    ("PC09", "PC0904", "Điện lực Diên Khánh", "Huyện Diên Khánh", _SINCE, None, None),
    ("PC09", "PC0905", "Điện lực Vạn Ninh", "Huyện Vạn Ninh", _SINCE, None, None),
    ("PC09", "PC0906", "Điện lực Cam Lâm", "Huyện Cam Lâm", _SINCE, None, None),
    # Gia Lai
    ("PC10", "PC1001", "Điện lực Pleiku", "TP Pleiku", _SINCE, None, None),
    ("PC10", "PC1002", "Điện lực An Khê", "Thị xã An Khê", _SINCE, None, None),
    ("PC10", "PC1003", "Điện lực Ayun Pa", "Thị xã Ayun Pa", _SINCE, None, None),
    ("PC10", "PC1004", "Điện lực Chư Sê", "Huyện Chư Sê", _SINCE, None, None),
    ("PC10", "PC1005", "Điện lực Chư Păh", "Huyện Chư Păh", _SINCE, None, None),
    ("PC10", "PC1006", "Điện lực Đức Cơ", "Huyện Đức Cơ", _SINCE, None, None),
    # Kon Tum (Kon Plông and Kon Rẫy merged in the 2025 reorganisation)
    ("PC11", "PC1101", "Điện lực TP Kon Tum", "TP Kon Tum", _SINCE, None, None),
    ("PC11", "PC1102", "Điện lực Đắk Hà", "Huyện Đắk Hà", _SINCE, None, None),
    ("PC11", "PC1103", "Điện lực Ngọc Hồi", "Huyện Ngọc Hồi", _SINCE, None, None),
    ("PC11", "PC1104", "Điện lực Sa Thầy", "Huyện Sa Thầy", _SINCE, None, None),
    ("PC11", "PC1105", "Điện lực Kon Plông", "Huyện Kon Plông", _SINCE, _UNTIL_REFORM_2025, "PC1107"),
    ("PC11", "PC1106", "Điện lực Kon Rẫy", "Huyện Kon Rẫy", _SINCE, _UNTIL_REFORM_2025, "PC1107"),
    ("PC11", "PC1107", "Điện lực Kon Plông - Kon Rẫy", "Huyện Kon Plông", _REFORM_2025, None, None),
    # Đắk Lắk
    ("PC12", "PC1201", "Điện lực Buôn Ma Thuột", "TP Buôn Ma Thuột", _SINCE, None, None),
    ("PC12", "PC1202", "Điện lực Buôn Hồ", "Thị xã Buôn Hồ", _SINCE, None, None),
    ("PC12", "PC1203", "Điện lực Cư M'gar", "Huyện Cư M'gar", _SINCE, None, None),
    ("PC12", "PC1204", "Điện lực Krông Pắc", "Huyện Krông Pắc", _SINCE, None, None),
    ("PC12", "PC1205", "Điện lực Ea Kar", "Huyện Ea Kar", _SINCE, None, None),
    ("PC12", "PC1206", "Điện lực Krông Ana", "Huyện Krông Ana", _SINCE, None, None),
    # Đắk Nông
    ("PC13", "PC1301", "Điện lực Gia Nghĩa", "TP Gia Nghĩa", _SINCE, None, None),
    ("PC13", "PC1302", "Điện lực Đắk Mil", "Huyện Đắk Mil", _SINCE, None, None),
    ("PC13", "PC1303", "Điện lực Đắk R'Lấp", "Huyện Đắk R'Lấp", _SINCE, None, None),
    ("PC13", "PC1304", "Điện lực Cư Jút", "Huyện Cư Jút", _SINCE, None, None),
    ("PC13", "PC1305", "Điện lực Krông Nô", "Huyện Krông Nô", _SINCE, None, None),
    # --- EVNHANOI -------------------------------------------------------------------------------
    ("PD01", "PD0101", "Điện lực Hoàn Kiếm", "Quận Hoàn Kiếm", _SINCE, None, None),
    ("PD02", "PD0201", "Điện lực Ba Đình", "Quận Ba Đình", _SINCE, None, None),
    ("PD03", "PD0301", "Điện lực Đống Đa", "Quận Đống Đa", _SINCE, None, None),
    ("PD04", "PD0401", "Điện lực Long Biên", "Quận Long Biên", _SINCE, None, None),
    # --- EVNHCMC --------------------------------------------------------------------------------
    ("PE01", "PE0100", "Điện lực Quận 1", "Quận 1", _SINCE, None, None),
    ("PE01", "PE0101", "Điện lực Quận 3", "Quận 3", _SINCE, None, None),
    ("PE02", "PE0201", "Điện lực Quận 5", "Quận 5", _SINCE, None, None),
    ("PE02", "PE0202", "Điện lực Quận 8", "Quận 8", _SINCE, None, None),
    ("PE03", "PE0301", "Điện lực Bình Thạnh", "Quận Bình Thạnh", _SINCE, None, None),
    ("PE03", "PE0302", "Điện lực Phú Nhuận", "Quận Phú Nhuận", _SINCE, None, None),
    ("PE04", "PE0401", "Điện lực Quận 4", "Quận 4", _SINCE, None, None),
    ("PE04", "PE0402", "Điện lực Quận 7", "Quận 7", _SINCE, None, None),
    # Quận 2, Quận 9 and Quận Thủ Đức became TP Thủ Đức on 2021-01-01.
    ("PE05", "PE0501", "Điện lực Quận 2", "Quận 2", _SINCE, _UNTIL_THU_DUC_CITY, "PE0504"),
    ("PE05", "PE0502", "Điện lực Quận 9", "Quận 9", _SINCE, _UNTIL_THU_DUC_CITY, "PE0504"),
    ("PE05", "PE0503", "Điện lực Quận Thủ Đức", "Quận Thủ Đức", _SINCE, _UNTIL_THU_DUC_CITY, "PE0504"),
    ("PE05", "PE0504", "Điện lực TP Thủ Đức", "TP Thủ Đức", _THU_DUC_CITY_FORMED, None, None),
    ("PE06", "PE0601", "Điện lực Quận 10", "Quận 10", _SINCE, None, None),
    ("PE06", "PE0602", "Điện lực Quận 11", "Quận 11", _SINCE, None, None),
    ("PE07", "PE0701", "Điện lực Quận 6", "Quận 6", _SINCE, None, None),
    ("PE07", "PE0702", "Điện lực Bình Tân", "Quận Bình Tân", _SINCE, None, None),
    ("PE08", "PE0801", "Điện lực Tân Bình", "Quận Tân Bình", _SINCE, None, None),
    ("PE08", "PE0802", "Điện lực Tân Phú", "Quận Tân Phú", _SINCE, None, None),
    ("PE09", "PE0901", "Điện lực Gò Vấp", "Quận Gò Vấp", _SINCE, None, None),
    ("PE09", "PE0902", "Điện lực Quận 12", "Quận 12", _SINCE, None, None),
    # The large suburban districts are split between two units each.
    ("PE10", "PE1001", "Điện lực Bình Chánh", "Huyện Bình Chánh", _SINCE, None, None),
    ("PE10", "PE1002", "Điện lực Vĩnh Lộc", "Huyện Bình Chánh", _SINCE, None, None),
    ("PE11", "PE1101", "Điện lực Hóc Môn", "Huyện Hóc Môn", _SINCE, None, None),
    ("PE11", "PE1102", "Điện lực Bà Điểm", "Huyện Hóc Môn", _SINCE, None, None),
    ("PE12", "PE1201", "Điện lực Củ Chi", "Huyện Củ Chi", _SINCE, None, None),
    ("PE12", "PE1202", "Điện lực An Nhơn Tây", "Huyện Củ Chi", _SINCE, None, None),
    ("PE13", "PE1301", "Điện lực Nhà Bè", "Huyện Nhà Bè", _SINCE, None, None),
    ("PE13", "PE1302", "Điện lực Cần Giờ", "Huyện Cần Giờ", _SINCE, None, None),
]

WARDS_FILE = Path(__file__).resolve().parent / "data" / "wards.json"


@functools.cache
def wards() -> dict[str, list[str]]:
    """Unit code → the real ward, commune and township names of the district it serves (``data/wards.json``):
    what an incident may name, and the demo customers' addresses."""
    return json.loads(WARDS_FILE.read_text(encoding="utf-8"))["data"]


_COMPANY_CODE = re.compile(r"[A-Z]{2}\d{2}")
_UNIT_CODE = re.compile(r"[A-Z]{2}\d{4}")
_DISTRICT_KINDS = ("Quận ", "Huyện ", "Thị xã ", "TP ")
_WARD_KINDS = ("Phường ", "Xã ", "Thị trấn ")


def _is_nfc(text: str) -> bool:
    return unicodedata.normalize("NFC", text) == text


def _check_names(label: str, names: list[str], low: int, high: int, kinds: tuple[str, ...]) -> None:
    assert low <= len(names) <= high, f"{label}: {len(names)} names, expected {low} to {high}"
    assert len(set(names)) == len(names), f"{label}: duplicate names"
    for name in names:
        assert _is_nfc(name), f"{label}: {name!r} is not NFC"
        assert name == name.strip() and "  " not in name, f"{label}: stray spaces in {name!r}"
        assert not kinds or name.startswith(kinds), f"{label}: unexpected name {name!r}"


def check() -> None:
    """Assert the invariants that ``load_organisation`` relies on."""
    # Corporations
    corporation_prefix: dict[str, str] = {}
    for code, name, prefix in CORPORATIONS:
        assert code not in corporation_prefix, f"duplicate corporation {code}"
        assert re.fullmatch(r"[A-Z]{2}", prefix), f"{code}: bad prefix {prefix!r}"
        assert _is_nfc(name), f"{code}: name is not NFC"
        corporation_prefix[code] = prefix
    assert len(set(corporation_prefix.values())) == len(CORPORATIONS), "duplicate corporation prefix"

    # Companies
    company_prefix: dict[str, str] = {}
    for corporation, code, name, province in COMPANIES:
        assert corporation in corporation_prefix, f"{code}: unknown corporation {corporation}"
        assert code not in company_prefix, f"duplicate company {code}"
        assert _COMPANY_CODE.fullmatch(code), f"bad company code {code!r}"
        assert code.startswith(corporation_prefix[corporation]), f"{code}: prefix != {corporation}"
        assert _is_nfc(name) and _is_nfc(province), f"{code}: text is not NFC"
        assert name.startswith("Công ty Điện lực "), f"{code}: unexpected name {name!r}"
        company_prefix[code] = corporation_prefix[corporation]
    assert len({name for _, _, name, _ in COMPANIES}) == len(COMPANIES), "duplicate company name"

    # Units
    units = {unit[1]: unit for unit in UNITS}
    assert len(units) == len(UNITS), "duplicate unit code"
    assert len({unit[2] for unit in UNITS}) == len(UNITS), "duplicate unit name"
    assert "PE0100" in units, "PE0100 must exist"
    for company, code, name, district, valid_from, valid_to, successor in UNITS:
        assert company in company_prefix, f"{code}: unknown company {company}"
        assert _UNIT_CODE.fullmatch(code), f"bad unit code {code!r}"
        assert code.startswith(company), f"{code}: not numbered within company {company}"
        assert _is_nfc(name) and _is_nfc(district), f"{code}: text is not NFC"
        assert name.startswith("Điện lực "), f"{code}: unexpected name {name!r}"
        assert district.startswith(_DISTRICT_KINDS), f"{code}: unexpected district {district!r}"
        assert valid_to is None or valid_to >= valid_from, f"{code}: valid_to before valid_from"
        if successor is not None:
            assert valid_to is not None, f"{code}: a merged unit needs a valid_to"
            assert successor in units, f"{code}: unknown successor {successor}"
            assert successor != code, f"{code}: is its own successor"
            successor_company, successor_from = units[successor][0], units[successor][4]
            assert company_prefix[successor_company] == company_prefix[company], (
                f"{code}: successor {successor} belongs to another corporation"
            )
            assert successor_from > valid_to, f"{code}: successor starts before {code} ends"
        if valid_to is None:
            assert code in wards(), f"active unit {code} has no wards"

    # The wards each unit serves
    for code, names in wards().items():
        assert code in units, f"wards: unknown unit {code}"
        _check_names(f"wards[{code}]", names, 6, 12, _WARD_KINDS)

if __name__ == "__main__":
    check()
    active = sum(1 for unit in UNITS if unit[5] is None)
    print(
        f"OK: {len(CORPORATIONS)} corporations, {len(COMPANIES)} companies, "
        f"{len(UNITS)} units ({active} active)"
    )
