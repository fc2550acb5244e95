// Command etcd is the upstream etcd server: etcdmain.Main is what the
// upstream etcd binary runs.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
