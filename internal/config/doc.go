// Package config gives every flag of a command two more sources: a
// configuration file (TOML or YAML, --config FILE or KINTSU_CONFIG) and
// KINTSU_* environment variables (--data-dir is KINTSU_DATA_DIR), with
// flags over the environment over the file, as etcd and CockroachDB
// order theirs. It also prints the result (--print-config) in the file
// format it reads.
//
// Invariants:
//   - A setting is only ever one of the command's flags, and goes
//     through that flag's own parser: a file or variable can say nothing
//     a flag could not, and a bad value is refused with the source named
//     (file and key, or variable), never ignored.
//   - An unknown key in a file is an error (a typo must not silently
//     leave a default in place); an unknown KINTSU_* variable is ignored,
//     since the environment is shared with other tools (KINTSU_HTTP is
//     ctl's).
//   - What --print-config prints, loaded as a file, gives the same
//     configuration.
package config
