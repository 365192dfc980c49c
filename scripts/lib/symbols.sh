# Shared by scripts/build-static.sh and scripts/hot-functions.sh (sourced, not run).

# function_symbols BIN: one line per function symbol of BIN, its name as linked, a tab, and its
# name demangled (GNU nm drops a Rust symbol's hash when it demangles, so this name stays the same
# across compilers, dependencies and flags). `nm -p` lists in one order with and without
# demangling.
function_symbols() {
    paste <(nm -p "$1") <(nm -p -C "$1") | awk -F'\t' '
        {
            split($1, raw, " ")
            if (raw[2] !~ /^[tTwW]$/) next
            name = $2
            sub(/^[^ ]+ [^ ]+ /, "", name)
            print raw[3] "\t" name
        }
    '
}
