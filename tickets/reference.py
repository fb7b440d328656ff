"""Reference data of the service catalogue: categories with their time limits, and public holidays.

Time limits from the centres' commitments (DOMAIN.md): acknowledge in 3 minutes, the unit calls the
customer in 4, an outage fixed in 2 hours; regulated services in working days (new low-voltage connection 5,
or 7 with network work; medium voltage 30; free contract changes 3; paid changes and meter tests 5); a bill
complaint answered in 24 hours.
"""

import datetime as dt

# (code, Vietnamese name, is outage, resolve minutes, resolve working days)
CATEGORIES = [
    ("outage", "Báo mất điện, sự cố điện", True, 120, None),
    ("new-lv", "Cấp điện mới hạ áp", False, None, 5),
    ("new-lv-network", "Cấp điện mới hạ áp có xây dựng lưới", False, None, 7),
    ("new-mv", "Cấp điện mới trung áp", False, None, 30),
    ("contract-change-free", "Thay đổi hợp đồng, thông tin khách hàng (không thu phí)", False, None, 3),
    ("contract-change-paid", "Thay đổi hợp đồng có thu phí", False, None, 5),
    ("meter", "Thay thế, kiểm định công tơ", False, None, 5),
    ("billing", "Khiếu nại chỉ số, hóa đơn tiền điện", False, 24 * 60, None),
    ("service-complaint", "Khiếu nại dịch vụ, thái độ nhân viên", False, None, 5),
    ("information", "Tra cứu, yêu cầu thông tin", False, 24 * 60, None),
    ("other", "Yêu cầu khác", False, None, 5),
]

POLICIES_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)

# Public holidays (days off) as announced for state employees; Tết ranges include the weekend days.
HOLIDAYS = [
    *[(dt.date(2025, 1, 25) + dt.timedelta(days=i), "Tết Ất Tỵ") for i in range(9)],
    (dt.date(2025, 1, 1), "Tết Dương lịch"),
    (dt.date(2025, 4, 7), "Giỗ Tổ Hùng Vương"),
    (dt.date(2025, 4, 30), "Ngày Thống nhất"),
    (dt.date(2025, 5, 1), "Quốc tế Lao động"),
    (dt.date(2025, 9, 1), "Quốc khánh"),
    (dt.date(2025, 9, 2), "Quốc khánh"),
    (dt.date(2026, 1, 1), "Tết Dương lịch"),
    *[(dt.date(2026, 2, 14) + dt.timedelta(days=i), "Tết Bính Ngọ") for i in range(9)],
    (dt.date(2026, 4, 27), "Giỗ Tổ Hùng Vương (nghỉ bù)"),
    (dt.date(2026, 4, 30), "Ngày Thống nhất"),
    (dt.date(2026, 5, 1), "Quốc tế Lao động"),
    (dt.date(2026, 9, 1), "Quốc khánh"),
    (dt.date(2026, 9, 2), "Quốc khánh"),
    (dt.date(2027, 1, 1), "Tết Dương lịch"),
    *[(dt.date(2027, 2, 5) + dt.timedelta(days=i), "Tết Đinh Mùi") for i in range(7)],
]
