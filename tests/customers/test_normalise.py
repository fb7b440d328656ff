import pytest

from core.phones import is_mobile
from customers.normalise import (
    InvalidPhone,
    display_phone,
    fold,
    has_diacritics,
    normalise_phone,
    search_document,
)


@pytest.mark.parametrize(
    "raw",
    [
        "0903 123 456",
        "+84903123456",
        "84-903-123-456",
        "0903.123.456",
        "(090) 312-3456",
        "0084 903 123 456",
        "903123456",
        "+84 (0) 903 123 456",  # the trunk 0 kept after the country code
        "+84 0903 123 456",
        "0084 (0) 903 123 456",
        "(+84) 903 123 456",  # the country code in brackets
    ],
)
def test_every_common_spelling_of_a_mobile_normalises_to_one_form(raw):
    assert normalise_phone(raw) == "+84903123456"


def test_landline_keeps_its_area_code():
    assert normalise_phone("(028) 3822 1234") == "+842838221234"
    assert normalise_phone("+84 (0) 28 3822 1234") == "+842838221234"
    assert normalise_phone("84 (0) 28 3822 1234") == "+842838221234"


@pytest.mark.parametrize(
    ("typed", "mobile"),
    [
        ("0903 123 456", True),
        ("01683 123 456", True),  # an old 11-digit mobile, renumbered 038…
        ("(028) 3822 1234", False),
        ("024 3933 0000", False),
    ],
)
def test_only_a_stored_mobile_takes_an_sms(typed, mobile):
    assert is_mobile(normalise_phone(typed)) is mobile


@pytest.mark.parametrize("stored", ["", "office", "0903123456", "+8490312345", "+849031234567", "+84003123456"])
def test_what_is_not_a_stored_number_is_no_mobile(stored):
    assert is_mobile(stored) is False


def test_old_eleven_digit_mobile_is_renumbered():
    # 0168 became 038 in 2018
    assert normalise_phone("0168 123 4567") == "+84381234567"


@pytest.mark.parametrize(
    "raw",
    [
        "", "abc", "19001909", "+1 202 555 0100", "0903+123", "09031234", "0012345678",
        "(+1) 202 555 0100", "+84 00 903 123 456", "((+84) 903 123 456", "0903 (+84) 123", "84", "(+)",
    ],
)
def test_what_is_not_a_vietnamese_phone_is_refused(raw):
    with pytest.raises(InvalidPhone):
        normalise_phone(raw)


def test_display_phone_groups_digits_as_agents_read_them():
    assert display_phone("+84903123456") == "0903 123 456"
    assert display_phone("+842838221234") == "028 3822 1234"


def test_fold_removes_case_accents_and_d_stroke():
    assert fold("Nguyễn Văn Đạt, Quận 1") == "nguyen van dat quan 1"
    assert fold("ĐẶNG THỊ HẰNG") == "dang thi hang"


def test_search_document_is_padded_for_word_prefix_matching():
    assert search_document("Lê Văn Ân", "45/3 Hùng Vương") == " le van an 45 3 hung vuong levanan "
    assert search_document("An", "1 Lê Lợi") == " an 1 le loi "


def test_has_diacritics():
    assert has_diacritics("Ngọc Hân")
    assert has_diacritics("đi")
    assert not has_diacritics("Ngoc Han")
