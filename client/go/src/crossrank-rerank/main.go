// Command crossrank-rerank calls a crossrank server's Rerank from Go, with the code protoc generates from
// the shared proto. Usage: crossrank-rerank HOST:PORT MODEL QUERY DOC...; prints JSON results.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	crossrankv1 "crossrank/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

type result struct {
	Index int32   `json:"index"`
	Score float32 `json:"score"`
}

func main() {
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: crossrank-rerank HOST:PORT MODEL QUERY DOC...")
		os.Exit(2)
	}
	target, model, query, documents := os.Args[1], os.Args[2], os.Args[3], os.Args[4:]
	conn, err := grpc.Dial(target, grpc.WithInsecure())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if key := os.Getenv("CROSSRANK_API_KEY"); key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	client := crossrankv1.NewCrossEncoderServiceClient(conn)
	response, err := client.Rerank(ctx, &crossrankv1.RerankRequest{Model: model, Query: query, Documents: documents})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	results := make([]result, 0, len(response.Results))
	for _, r := range response.Results {
		results = append(results, result{Index: r.Index, Score: r.Score})
	}
	out, _ := json.Marshal(map[string]interface{}{"model": response.Model, "results": results})
	fmt.Println(string(out))
}
