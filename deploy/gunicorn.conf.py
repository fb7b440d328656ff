"""gunicorn's configuration for tongdai (``gunicorn --config deploy/gunicorn.conf.py``; tongdai-web.service).

Threads in a few processes (gthread): one process per core plus one, four threads each, as measured on two
cores (README, *Ticket intake under load*). The reverse proxy in front (deploy/nginx-tongdai.conf) terminates
TLS and buffers slow clients; gunicorn listens on loopback only.
"""

import multiprocessing
import os

wsgi_app = "tongdai.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
keepalive = 5
# A request that takes longer than this is cut off (exports stream, so bytes keep flowing well within it).
timeout = 120
# On SIGTERM (systemctl stop, a deploy) requests in flight get this long to finish; tongdai-web.service's
# TimeoutStopSec is longer, and KillMode=mixed then kills whatever is left.
graceful_timeout = 30
# Workers are replaced after so many requests (bounded memory growth), not all at once.
max_requests = 20_000
max_requests_jitter = 2_000
# X-Forwarded-For / X-Forwarded-Proto are trusted from the proxy on this host only.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# tongdai logs every request itself (one JSON line with its id, user and duration): no second access log.
accesslog = None
errorlog = "-"
