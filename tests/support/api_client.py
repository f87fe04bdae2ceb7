"""A tiny HTTP client for end-to-end tests."""

import requests


class ApiClient:
    def __init__(self, base_url):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def get(self, path, **kwargs):
        return self.http.get(self.base_url + path, timeout=10, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.http.post(self.base_url + path, json=json, timeout=10, **kwargs)

    def register(self, email, password="correct horse battery", name=None):
        body = {"email": email, "password": password}
        if name:
            body["name"] = name
        return self.post("/v1/users", json=body)
