import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

URL = "http://127.0.0.1:8000/"
deadline = time.monotonic() + 30
while True:  # the server may still be starting
    try:
        urllib.request.urlopen(URL, timeout=5).read()
        break
    except (urllib.error.URLError, ConnectionError):
        if time.monotonic() > deadline:
            sys.exit("the server does not answer on " + URL)
        time.sleep(0.5)
try:
    body = urllib.request.urlopen(URL + "health.json", timeout=5).read()
except urllib.error.HTTPError as e:
    sys.exit(f"GET /health.json: {e.code}")
version = Path("/app/www/VERSION").read_text().strip()
health = json.loads(body)
print("GET /health.json:", health)
sys.exit(0 if health == {"status": "ok", "version": version} else 1)
