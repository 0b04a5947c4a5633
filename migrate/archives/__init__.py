"""Archives: Mailman 2 mbox archives and pipermail pages → HyperKitty, and redirects for the old URLs.

Everything here is pure and works on local files or strings; fetching the archive from the legacy
host, running `hyperkitty_import` and installing the redirect files are done by the steps.

- `msgid`: Message-IDs as HyperKitty stores them, their URL hash, and stable ids for messages that
  have none.
- `mbox`: lint an mbox archive (`scan`) and write the cleaned copy that is imported (`prepare`),
  with every change recorded; the one rule for where messages start.
- `missing`: which messages of an mbox HyperKitty lacks, also those hidden inside another's body,
  and why (for verification).
- `pipermail`: volume names, the Message-ID inside each article page, and a fast walk over a list's
  pipermail folder.
- `redirects`: old pipermail and web UI URLs → HyperKitty and Postorius URLs, rendered as an nginx
  `map` or an Apache `RewriteMap`.
"""
