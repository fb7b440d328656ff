"""The English interface is used in Vietnam too: dates are typed day first there as well (see the Vietnamese
module); how they are shown stays Django's English."""

from tongdai.formats.vi.formats import DATE_INPUT_FORMATS, DATETIME_INPUT_FORMATS, TIME_INPUT_FORMATS

__all__ = ["DATETIME_INPUT_FORMATS", "DATE_INPUT_FORMATS", "TIME_INPUT_FORMATS"]
