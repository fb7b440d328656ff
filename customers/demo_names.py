"""Word lists for realistic Vietnamese demo customers.

Pure data: family names weighted by their approximate share of the population, middle and given names
by gender, and the pieces of business and public-body names. A demo person is
``family + middle + given`` (e.g. "Nguyễn Thị Hằng"); a demo business is
``prefix + word(s)`` (e.g. "Công ty TNHH Thương mại Phú Thành"); a demo public body is
``administrative name + place`` (e.g. "Trường THCS Tân Định").

Run this module directly to check the lists: ``python3 customers/demo_names.py``.
"""

import unicodedata

# (family name, approximate share of the population)
FAMILY_NAMES: list[tuple[str, float]] = [
    ("Nguyễn", 0.38),
    ("Trần", 0.11),
    ("Lê", 0.095),
    ("Phạm", 0.07),
    ("Hoàng", 0.051),
    ("Huỳnh", 0.051),
    ("Phan", 0.045),
    ("Vũ", 0.039),
    ("Võ", 0.039),
    ("Đặng", 0.021),
    ("Bùi", 0.02),
    ("Đỗ", 0.014),
    ("Hồ", 0.013),
    ("Ngô", 0.013),
    ("Dương", 0.01),
    ("Lý", 0.005),
    ("Trương", 0.005),
    ("Đinh", 0.004),
    ("Lâm", 0.003),
    ("Mai", 0.003),
    ("Trịnh", 0.003),
]

MIDDLE_NAMES_MALE: list[str] = [
    "Văn",
    "Hữu",
    "Đức",
    "Minh",
    "Quốc",
    "Thanh",
    "Công",
    "Đình",
    "Xuân",
    "Hoàng",
    "Quang",
    "Trọng",
    "Tiến",
    "Gia",
    "Bá",
]

MIDDLE_NAMES_FEMALE: list[str] = [
    "Thị",
    "Ngọc",
    "Thu",
    "Thanh",
    "Kim",
    "Mỹ",
    "Bích",
    "Hồng",
    "Diệu",
    "Phương",
    "Thùy",
    "Minh",
    "Hoài",
    "Khánh",
    "Bảo",
]

GIVEN_NAMES_MALE: list[str] = [
    "An",
    "Bảo",
    "Bình",
    "Cường",
    "Chiến",
    "Công",
    "Danh",
    "Dũng",
    "Duy",
    "Dương",
    "Đạt",
    "Đăng",
    "Định",
    "Đông",
    "Đức",
    "Giang",
    "Hải",
    "Hào",
    "Hậu",
    "Hiếu",
    "Hiệp",
    "Hiển",
    "Hòa",
    "Hoàn",
    "Hoàng",
    "Huy",
    "Hùng",
    "Hưng",
    "Kha",
    "Khang",
    "Khải",
    "Khánh",
    "Khoa",
    "Khôi",
    "Kiên",
    "Lâm",
    "Lộc",
    "Lợi",
    "Long",
    "Luân",
    "Lực",
    "Mạnh",
    "Minh",
    "Nam",
    "Nghĩa",
    "Nguyên",
    "Nhân",
    "Nhật",
    "Phát",
    "Phong",
    "Phúc",
    "Phước",
    "Quân",
    "Quang",
    "Quốc",
    "Quý",
    "Sang",
    "Sơn",
    "Tài",
    "Tâm",
    "Tân",
    "Thái",
    "Thắng",
    "Thành",
    "Thịnh",
    "Thông",
    "Tiến",
    "Toàn",
    "Trí",
    "Triều",
    "Trọng",
    "Trung",
    "Trường",
    "Tú",
    "Tuấn",
    "Tùng",
    "Việt",
    "Vinh",
    "Vũ",
    "Vương",
]

GIVEN_NAMES_FEMALE: list[str] = [
    "An",
    "Anh",
    "Ánh",
    "Bích",
    "Châu",
    "Chi",
    "Cúc",
    "Diễm",
    "Diệp",
    "Diệu",
    "Dung",
    "Duyên",
    "Đào",
    "Giang",
    "Giao",
    "Hà",
    "Hạnh",
    "Hảo",
    "Hân",
    "Hằng",
    "Hậu",
    "Hiền",
    "Hoa",
    "Hồng",
    "Huệ",
    "Huyền",
    "Hương",
    "Hường",
    "Khánh",
    "Khuê",
    "Kiều",
    "Lan",
    "Lệ",
    "Liên",
    "Liễu",
    "Linh",
    "Loan",
    "Ly",
    "Mai",
    "My",
    "Nga",
    "Ngà",
    "Ngân",
    "Ngọc",
    "Nguyệt",
    "Nhàn",
    "Nhi",
    "Nhung",
    "Oanh",
    "Phương",
    "Phượng",
    "Quyên",
    "Quỳnh",
    "Sương",
    "Tâm",
    "Thảo",
    "Thắm",
    "Thanh",
    "Thơ",
    "Thoa",
    "Thu",
    "Thúy",
    "Thủy",
    "Thư",
    "Thương",
    "Tiên",
    "Trâm",
    "Trang",
    "Trinh",
    "Tú",
    "Tuyết",
    "Uyên",
    "Vân",
    "Vi",
    "Vy",
    "Xuân",
    "Yến",
    "Hoài",
    "Mỹ",
    "Ngát",
]

BUSINESS_PREFIXES: list[str] = [
    "Công ty TNHH",
    "Công ty TNHH MTV",
    "Công ty Cổ phần",
    "Doanh nghiệp tư nhân",
    "Hộ kinh doanh",
    "Hợp tác xã",
    "Cửa hàng",
    "Cơ sở",
    "Xưởng",
    "Nhà hàng",
    "Khách sạn",
]

BUSINESS_WORDS: list[str] = [
    # line of business
    "Thương mại",
    "Dịch vụ",
    "Xây dựng",
    "Sản xuất",
    "Đầu tư",
    "Vận tải",
    "Kỹ thuật",
    "Công nghệ",
    "Xuất nhập khẩu",
    "Thực phẩm",
    "Nông sản",
    "Thủy sản",
    "Cơ khí",
    "Điện máy",
    "Vật liệu xây dựng",
    "Bất động sản",
    "Du lịch",
    "May mặc",
    "In ấn",
    "Nội thất",
    "Dược phẩm",
    # auspicious trade names
    "Phú Thành",
    "Minh Long",
    "Hoàng Gia",
    "An Phát",
    "Thành Công",
    "Tân Phát",
    "Hưng Thịnh",
    "Phước Lộc",
    "Đại Việt",
    "Sao Mai",
    "Hồng Phúc",
    "Kim Ngân",
    "Thiên Phú",
    "Nam Việt",
    "Trường Sơn",
    "Bình Minh",
    "Vạn Xuân",
    "Hòa Bình",
    "Tiến Đạt",
    "Thịnh Vượng",
    "Phương Nam",
]

ADMINISTRATIVE_NAMES: list[str] = [
    "Ủy ban nhân dân",
    "Trường Mầm non",
    "Trường Tiểu học",
    "Trường THCS",
    "Trường THPT",
    "Trạm Y tế",
    "Trung tâm Y tế",
    "Bệnh viện Đa khoa",
    "Công an",
    "Ban Chỉ huy Quân sự",
    "Nhà văn hóa",
    "Thư viện",
    "Bưu điện",
    "Ban Quản lý chợ",
    "Chi cục Thuế",
    "Kho bạc Nhà nước",
]


def _is_nfc(text: str) -> bool:
    return unicodedata.normalize("NFC", text) == text


def _check_list(label: str, names: list[str]) -> None:
    assert names, f"{label} is empty"
    assert len(set(names)) == len(names), f"{label} has duplicates"
    for name in names:
        assert _is_nfc(name), f"{label}: {name!r} is not NFC"
        assert name == name.strip() and "  " not in name, f"{label}: stray spaces in {name!r}"


def check() -> None:
    """Assert that every list is duplicate-free and NFC, and that the family-name shares add up."""
    _check_list("FAMILY_NAMES", [name for name, _share in FAMILY_NAMES])
    assert all(share > 0 for _name, share in FAMILY_NAMES), "FAMILY_NAMES: shares must be positive"
    total = sum(share for _name, share in FAMILY_NAMES)
    assert 0.9 <= total <= 1.0, f"FAMILY_NAMES: shares add up to {total:.3f}"
    _check_list("MIDDLE_NAMES_MALE", MIDDLE_NAMES_MALE)
    _check_list("MIDDLE_NAMES_FEMALE", MIDDLE_NAMES_FEMALE)
    _check_list("GIVEN_NAMES_MALE", GIVEN_NAMES_MALE)
    _check_list("GIVEN_NAMES_FEMALE", GIVEN_NAMES_FEMALE)
    assert {"Hân", "Hằng"} <= set(GIVEN_NAMES_FEMALE), "GIVEN_NAMES_FEMALE needs Hân and Hằng"
    _check_list("BUSINESS_PREFIXES", BUSINESS_PREFIXES)
    _check_list("BUSINESS_WORDS", BUSINESS_WORDS)
    _check_list("ADMINISTRATIVE_NAMES", ADMINISTRATIVE_NAMES)


if __name__ == "__main__":
    check()
    print(
        f"OK: {len(FAMILY_NAMES)} family names, {len(GIVEN_NAMES_MALE)} + {len(GIVEN_NAMES_FEMALE)} "
        f"given names, {len(BUSINESS_WORDS)} business words"
    )
