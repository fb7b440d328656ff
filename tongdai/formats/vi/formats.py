"""How dates and times are typed in the interface: day first, as in Vietnam (03/11/2025 is 3 November), then
ISO. Django's own locale data for Vietnamese sets no input formats, so its defaults (month first) would read
03/11/2025 as 11 March and refuse 25/11/2025. The short formats (tables: a ticket's deadlines and timeline, the
callbacks queue, the card) are written as they are typed and as record titles give them (``core.times``):
08/12/2026 05:20, not Django's 05:20 08-12-2026; the long formats stay Django's."""

SHORT_DATE_FORMAT = "d/m/Y"
SHORT_DATETIME_FORMAT = "d/m/Y H:i"

DATE_INPUT_FORMATS = ["%d/%m/%Y", "%d/%m/%y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"]
DATETIME_INPUT_FORMATS = [
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S.%f", "%d/%m/%Y %H:%M", "%d/%m/%Y",
    "%d/%m/%y %H:%M:%S", "%d/%m/%y %H:%M",
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y-%m-%d",
]  # fmt: skip
TIME_INPUT_FORMATS = ["%H:%M:%S", "%H:%M:%S.%f", "%H:%M"]
