// Command etcd is the upstream etcd server: etcd's root module replaces its sub-modules with local
// paths (so `go install` refuses it); this wrapper requires the published server module instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
