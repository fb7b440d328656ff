"""How dates and times are typed in the interface: day first, as in Vietnam (03/11/2025 is 3 November), then
ISO. Django's own locale data for Vietnamese sets no input formats, so its defaults (month first) would read
03/11/2025 as 11 March and refuse 25/11/2025. The other formats (how dates are shown) stay Django's."""

DATE_INPUT_FORMATS = ["%d/%m/%Y", "%d/%m/%y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"]
DATETIME_INPUT_FORMATS = [
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S.%f", "%d/%m/%Y %H:%M", "%d/%m/%Y",
    "%d/%m/%y %H:%M:%S", "%d/%m/%y %H:%M",
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y-%m-%d",
]  # fmt: skip
TIME_INPUT_FORMATS = ["%H:%M:%S", "%H:%M:%S.%f", "%H:%M"]
