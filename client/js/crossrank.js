// crossrank client for Node.js: the CrossEncoderService from the same proto as every other client,
// loaded at run time with @grpc/proto-loader (no generated code to keep in sync).
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = process.env.CROSSRANK_PROTO_ROOT || path.join(__dirname, '..', '..', 'proto');

function loadService() {
  const definition = protoLoader.loadSync('crossrank/v1/crossrank_service.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).crossrank.v1.CrossEncoderService;
}

class CrossEncoderClient {
  // target: "host:port"; options: {apiKey, credentials (grpc.credentials.createSsl(...)), timeoutMs}
  constructor(target, options = {}) {
    const Service = loadService();
    this.client = new Service(target, options.credentials || grpc.credentials.createInsecure());
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs || 30000;
  }

  call(method, request) {
    const metadata = new grpc.Metadata();
    if (this.apiKey) metadata.set('authorization', `Bearer ${this.apiKey}`);
    const deadline = new Date(Date.now() + this.timeoutMs);
    return new Promise((resolve, reject) => {
      this.client[method](request, metadata, {deadline}, (error, response) => {
        if (error) {
          const err = new Error(`${grpc.status[error.code]}: ${error.details}`);
          err.code = grpc.status[error.code];
          reject(err);
        } else {
          resolve(response);
        }
      });
    });
  }

  // Ranks documents against the query; results sorted by descending score.
  rerank(query, documents, {model = '', topN = 0, returnDocuments = false, rawScores = false} = {}) {
    return this.call('Rerank', {model, query, documents, top_n: topN, return_documents: returnDocuments,
                                raw_scores: rawScores});
  }

  classify(pairs, {model = '', rawScores = false} = {}) {
    const inputs = pairs.map(([text, text_pair]) => ({text, text_pair}));
    return this.call('Classify', {model, inputs, raw_scores: rawScores});
  }

  listModels() {
    return this.call('ListModels', {});
  }

  close() {
    this.client.close();
  }
}

module.exports = {CrossEncoderClient};
