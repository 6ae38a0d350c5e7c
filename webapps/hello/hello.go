// Package hello embeds herd's static sample site (webapps/hello: manifest.yaml and public/), so that
// `herd up` can deploy it from the herd binary alone.
package hello

import "embed"

// Files holds manifest.yaml and public/ of the sample site.
//
//go:embed manifest.yaml public
var Files embed.FS
