package bench

import (
	"context"

	"github.com/redis/go-redis/v9"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// respClient drives Kintsu or Redis through go-redis. One go-redis client
// (a pool) is shared by all workers: it is safe for concurrent use, and
// its pool holds one connection per worker and node.
type respClient struct{ c redis.UniversalClient }

func (r respClient) Set(ctx context.Context, key string, val []byte) error {
	return r.c.Set(ctx, key, val, 0).Err()
}

func (r respClient) Get(ctx context.Context, key string) error {
	err := r.c.Get(ctx, key).Err()
	if err == redis.Nil {
		return nil
	}
	return err
}

func (r respClient) MSet(ctx context.Context, keys []string, val []byte) error {
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, val)
	}
	return r.c.MSet(ctx, args...).Err()
}

func (r respClient) PipeSet(ctx context.Context, keys []string, val []byte) (bool, error) {
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Set(ctx, k, val, 0)
		}
		return nil
	})
	return true, err
}

// etcdClient drives etcd through its own gRPC KV API, as its Go client
// does: reads are linearizable (the default), a multi-key write is one
// transaction of puts.
type etcdClient struct{ kv pb.KVClient }

func newEtcdClient(conn *grpc.ClientConn) etcdClient { return etcdClient{pb.NewKVClient(conn)} }

func (e etcdClient) Set(ctx context.Context, key string, val []byte) error {
	_, err := e.kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: val})
	return err
}

func (e etcdClient) Get(ctx context.Context, key string) error {
	_, err := e.kv.Range(ctx, &pb.RangeRequest{Key: []byte(key)})
	return err
}

func (e etcdClient) MSet(ctx context.Context, keys []string, val []byte) error {
	ops := make([]*pb.RequestOp, len(keys))
	for i, k := range keys {
		ops[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: val}}}
	}
	_, err := e.kv.Txn(ctx, &pb.TxnRequest{Success: ops})
	return err
}

// PipeSet: etcd's API has no pipelining of independent writes.
func (etcdClient) PipeSet(context.Context, []string, []byte) (bool, error) { return false, nil }
