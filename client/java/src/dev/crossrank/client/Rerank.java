package dev.crossrank.client;

import dev.crossrank.v1.CrossEncoderServiceGrpc;
import dev.crossrank.v1.RerankRequest;
import dev.crossrank.v1.RerankResponse;
import dev.crossrank.v1.RerankResult;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

/**
 * Calls a crossrank server's Rerank from Java, with the code protoc generates from the shared proto.
 * Usage: Rerank HOST:PORT MODEL QUERY DOC... ; prints JSON results.
 */
public final class Rerank {
  private Rerank() {}

  public static void main(String[] args) throws InterruptedException {
    if (args.length < 4) {
      System.err.println("usage: Rerank HOST:PORT MODEL QUERY DOC...");
      System.exit(2);
    }
    ManagedChannel channel = ManagedChannelBuilder.forTarget(args[0]).usePlaintext().build();
    try {
      CrossEncoderServiceGrpc.CrossEncoderServiceBlockingStub stub =
          CrossEncoderServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
      String key = System.getenv("CROSSRANK_API_KEY");
      if (key != null && !key.isEmpty()) {
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + key);
        stub = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
      }
      RerankResponse response = stub.rerank(RerankRequest.newBuilder()
          .setModel(args[1]).setQuery(args[2])
          .addAllDocuments(Arrays.asList(args).subList(3, args.length)).build());
      StringBuilder out = new StringBuilder("{\"model\":\"" + response.getModel() + "\",\"results\":[");
      for (int i = 0; i < response.getResultsCount(); i++) {
        RerankResult r = response.getResults(i);
        out.append(i > 0 ? "," : "").append("{\"index\":").append(r.getIndex())
            .append(",\"score\":").append(r.getScore()).append("}");
      }
      System.out.println(out.append("]}"));
    } catch (io.grpc.StatusRuntimeException e) {
      System.err.println(e.getStatus().getCode() + ": " + e.getStatus().getDescription());
      System.exit(1);
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
