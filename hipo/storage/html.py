"""The style both HTML reports (evaluation, data-quality gate) share; each adds its own rules after it."""

BASE_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;font-size:.9em}
th{background:#f3f3f3}
.muted{color:#666}
"""
