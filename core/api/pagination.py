"""Cursor pagination by id: never counts, stable under inserts, cheap on tables of millions."""

from django.utils.translation import gettext as _
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        """A cursor the list did not give is bad input (400, in the caller's language), not a missing page:
        one DRF cannot decode, and one whose position is not an id (DRF does not look at it; the ordering is
        always by id)."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise self._refused() from None
        if cursor is not None and cursor.position is not None and not self._is_id(cursor.position):
            raise self._refused()
        return cursor

    @staticmethod
    def _is_id(position: str) -> bool:
        """A whole number the database's ids can hold (18 digits: below any 64-bit integer's limit)."""
        digits = position.removeprefix("-")
        return digits.isascii() and digits.isdecimal() and len(digits) <= 18

    def _refused(self):
        return ValidationError(
            {self.cursor_query_param: [_("This cursor is not one the list gave: start again from the first page.")]}
        )
