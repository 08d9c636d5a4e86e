"""The demo zone ``example.test.`` that ``serve --demo`` creates when it is missing."""

from __future__ import annotations

DEMO_ZONE = "example.test."

DEMO_TEXT = """\
$ORIGIN example.test.
$TTL 3600
@       IN SOA  ns1.example.test. hostmaster.example.test. 1 3600 900 1209600 300
@       IN NS   ns1
@       IN NS   ns2
@       IN A    192.0.2.10
@       IN AAAA 2001:db8::10
@       IN MX   10 mail
@       IN TXT  "v=spf1 mx -all"
ns1     IN A    192.0.2.1
ns2     IN A    192.0.2.2
ns1     IN AAAA 2001:db8::1
mail    IN A    192.0.2.25
www     IN CNAME @
*.apps  IN A    192.0.2.80
sub     IN NS   ns1.sub
ns1.sub IN A    192.0.2.53
"""
