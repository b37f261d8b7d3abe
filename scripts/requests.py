"""Sends N GET requests over four keep-alive HTTPS connections, trusting only the given CA.

Usage: requests.py PORT N CA_FILE [PATH]. Fails on any status other than 200.
"""
import http.client
import ssl
import sys

port, n, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
path = sys.argv[4] if len(sys.argv) > 4 else "/"
context = ssl.create_default_context(cafile=ca)
connections = [http.client.HTTPSConnection("localhost", port, context=context) for _ in range(4)]
for i in range(n):
    connection = connections[i % len(connections)]
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"{path}: status {response.status}")
