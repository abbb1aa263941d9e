// Package migrations holds the versioned SQL schema, embedded in the
// binary. Every file runs on MySQL 8 and MariaDB 10.11 alike.
package migrations

import "embed"

// FS holds the migration files, applied in order of their version prefix.
//
//go:embed *.sql
var FS embed.FS
