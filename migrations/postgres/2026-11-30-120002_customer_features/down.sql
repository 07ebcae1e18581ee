DROP TABLE customer_feature_fetches;
DROP INDEX customer_features_lookup_key;
DROP TABLE customer_features;
