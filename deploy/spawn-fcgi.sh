#!/bin/sh
# Start every llmgw route family with spawn-fcgi, without systemd, from a
# tree under /opt/llmgw. (Installed with make install or the package: use
# llmgw-families start | restart | stop instead, which also rolls upgrades.)
# Each program logs to [log] file (spawn-fcgi without -n would send stderr
# to /dev/null): set `file = /var/log/llmgw/llmgw.log` in llmgw.conf, or use
# these -n lines under a supervisor (runit, s6, daemontools).
#
#   spawn-fcgi -n -s /run/llmgw/chat.sock       -M 0660 -b 4096 -u llmgw -g www-data -- /opt/llmgw/cgi-bin/llmgw-chat       -c /etc/llmgw/llmgw.conf
#   spawn-fcgi -n -s /run/llmgw/embeddings.sock -M 0660 -b 4096 -u llmgw -g www-data -- /opt/llmgw/cgi-bin/llmgw-embeddings -c /etc/llmgw/llmgw.conf
#   spawn-fcgi -n -s /run/llmgw/keys.sock       -M 0660 -b 4096 -u llmgw -g www-data -- /opt/llmgw/cgi-bin/llmgw-keys       -c /etc/llmgw/llmgw.conf
#   spawn-fcgi -n -s /run/llmgw/spend.sock      -M 0660 -b 4096 -u llmgw -g www-data -- /opt/llmgw/cgi-bin/llmgw-spend      -c /etc/llmgw/llmgw.conf
#   spawn-fcgi -n -s /run/llmgw/health.sock     -M 0660 -b 4096 -u llmgw -g www-data -- /opt/llmgw/cgi-bin/llmgw-health     -c /etc/llmgw/llmgw.conf
#
# Without a supervisor (daemonized, pid files, log file from llmgw.conf):
set -eu
PREFIX=${PREFIX:-/opt/llmgw}
CONF=${CONF:-/etc/llmgw/llmgw.conf}
RUN=${RUN:-/run/llmgw}
mkdir -p "$RUN"
for prog in "$PREFIX"/cgi-bin/llmgw-*; do
    fam=${prog##*/llmgw-}
    rm -f "$RUN/$fam.sock"
    spawn-fcgi -s "$RUN/$fam.sock" -M 0660 -b 4096 -u llmgw -g www-data \
        -P "$RUN/$fam.pid" -- "$prog" -c "$CONF"
done
