"""The storage of the static files in production: whitenoise's (compressed, named by their content's hash), each
file's URL worked out once per process.

The manifest that maps a file to its hashed name is read when the process starts and does not change while it
runs (``collectstatic`` runs before the services restart), and every admin page asks for the same few dozen
URLs, the list pages once per row for their yes/no icons: looking each up in the manifest again was about a
twentieth of a 50-row list."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage

KNOWN_URLS_MAX = 2_000  # the project's static files are a few hundred; a bound, not a working set


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.known_urls: dict[tuple[str, bool], str] = {}

    def url(self, name, force=False):
        key = (name, force)
        url = self.known_urls.get(key)
        if url is None:
            url = super().url(name, force)
            if len(self.known_urls) >= KNOWN_URLS_MAX:
                self.known_urls.clear()
            self.known_urls[key] = url
        return url
