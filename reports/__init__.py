"""The top floor: the managers' dashboard (``dashboard``, ``admin_views``) and the monthly reports mailed to
them (``monthly``). It reads every app below it; nothing below imports it."""
